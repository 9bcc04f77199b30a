using System.Text.Json;
using Async.Serving.Api.Jobs;
using Async.Serving.Contracts;
using Async.Serving.Jobs;
using Hangfire;
using MassTransit;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Webhooks;

/// <summary>
/// Turns job events into webhook deliveries: when the job's webhook subscribed to the event, one
/// Hangfire job is enqueued for it. Every API instance reads the same queue (competing consumers),
/// so each event is handled once however many instances run. Every terminal state is
/// <c>job.completed</c>; <c>data.status</c> tells which.
/// </summary>
public sealed partial class JobEventsConsumer(
    RedisJobStore store,
    IBackgroundJobClient jobs,
    IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json,
    ILogger<JobEventsConsumer> logger)
    : IConsumer<JobStarted>, IConsumer<JobProgress>, IConsumer<JobCompleted>, IConsumer<JobFailed>, IConsumer<JobCancelled>, IConsumer<JobExpired>
{
    public Task Consume(ConsumeContext<JobStarted> context) =>
        EnqueueAsync(context.Message.JobId, context.Message.TenantId, WebhookEvents.Started, context.Message.StartedAt);

    /// <summary>
    /// Progress is coalesced by the worker (one event per progress interval at most) and delivered
    /// once, without retries: a stale progress report is worth nothing. A job that already ended
    /// gets no more progress deliveries.
    /// </summary>
    public Task Consume(ConsumeContext<JobProgress> context) =>
        EnqueueAsync(context.Message.JobId, context.Message.TenantId, WebhookEvents.Progress, context.Message.At,
            $"_{(int)Math.Round(context.Message.Progress * 1000)}");

    public Task Consume(ConsumeContext<JobCompleted> context) =>
        EnqueueAsync(context.Message.JobId, context.Message.TenantId, WebhookEvents.Completed, context.Message.CompletedAt);

    public Task Consume(ConsumeContext<JobFailed> context) =>
        EnqueueAsync(context.Message.JobId, context.Message.TenantId, WebhookEvents.Completed, context.Message.FailedAt);

    public Task Consume(ConsumeContext<JobCancelled> context) =>
        EnqueueAsync(context.Message.JobId, context.Message.TenantId, WebhookEvents.Completed, context.Message.CancelledAt);

    public Task Consume(ConsumeContext<JobExpired> context) =>
        EnqueueAsync(context.Message.JobId, context.Message.TenantId, WebhookEvents.Completed, context.Message.ExpiredAt);

    private async Task EnqueueAsync(string jobId, string tenantId, string eventName, DateTimeOffset at, string idSuffix = "")
    {
        // Most jobs have no webhook: look before reading the output (512 floats for an embedding).
        var job = await store.GetAsync(jobId, includeOutput: false).ConfigureAwait(false);
        if (job is null || job.TenantId != tenantId || WebhookSubscription.FromJson(job.WebhookJson) is not { } webhook || !webhook.Wants(eventName)
            || (eventName == WebhookEvents.Progress && JobStatus.IsTerminal(job.Status)))
        {
            return;
        }

        // A progress event describes the running job as it was just read: reading it again could find
        // it finished, and a job.progress saying "succeeded" would contradict itself.
        if (eventName != WebhookEvents.Progress)
        {
            job = await store.GetAsync(jobId).ConfigureAwait(false) ?? job;
        }

        var type = "job." + eventName;
        var body = JsonSerializer.Serialize(new WebhookPayload(type, at.UtcDateTime, JobResource.From(job)), json.Value.SerializerOptions);
        // Stable per job and event: a receiver that sees it twice (a retry, a redelivered event) can drop the copy.
        var message = new WebhookMessage(tenantId, jobId, webhook.Url, type, $"msg_{jobId}_{eventName}{idSuffix}", body);
        var hangfireJob = jobs.Enqueue<WebhookDelivery>(d => d.DeliverAsync(message, 1, CancellationToken.None));
        LogEnqueued(logger, message.MessageId, hangfireJob);
    }

    [LoggerMessage(EventId = 710, Level = LogLevel.Debug, Message = "Webhook {MessageId} enqueued as Hangfire job {HangfireJobId}")]
    private static partial void LogEnqueued(ILogger logger, string messageId, string hangfireJobId);
}

/// <summary>The API's one receive endpoint for job events, shared by all API instances; a short retry rides out a Redis or PostgreSQL blip.</summary>
public sealed class JobEventsConsumerDefinition : ConsumerDefinition<JobEventsConsumer>
{
    public const string Queue = "api-job-events";

    public JobEventsConsumerDefinition() => EndpointName = Queue;

    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<JobEventsConsumer> consumerConfigurator, IRegistrationContext context)
    {
        ArgumentNullException.ThrowIfNull(endpointConfigurator);
        endpointConfigurator.UseMessageRetry(r => r.Intervals(200, 1000, 5000, 15000));
    }
}
