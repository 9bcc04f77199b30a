using System.Globalization;
using System.Text.Json;
using Async.Serving.Api.Jobs;
using Async.Serving.Api.Ledger;
using Async.Serving.Hosting;
using Async.Serving.Jobs;
using Hangfire;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Api.Webhooks;

/// <summary>
/// The relay of the job store's outbox (the shards' <see cref="RedisJobStore.EventStream"/>s): each event a job's
/// webhook subscribed to becomes one Hangfire delivery. An entry is acknowledged only after Hangfire
/// took the delivery, so an event survives a crash of the API, a PostgreSQL outage of any length
/// (the relay retries with a growing pause; the entries wait in Redis) and a Redis restart (AOF).
/// Every API instance runs a relay in the same consumer group: each entry is relayed by one of them,
/// at least once. An entry relayed twice (the relay stopped between Hangfire and the acknowledgement)
/// yields the same webhook id and the same body, built from the entry and the job's stable fields,
/// so a receiver can drop the copy.
/// </summary>
public sealed partial class JobEventRelay(
    IConnectionMultiplexer redis,
    RedisJobStore store,
    IBackgroundJobClient jobs,
    IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json,
    IOptions<WebhookOptions> options,
    TimeProvider clock,
    ILogger<JobEventRelay> logger) : BackgroundService
{
    public const string Group = "webhook-relay";

    private static readonly Prometheus.Counter Relayed = Prometheus.Metrics.CreateCounter(
        "serving_webhook_events_relayed_total", "Outbox entries handed to Hangfire as webhook deliveries (or found to need none).");

    private static readonly Prometheus.Gauge FailuresInRow = Prometheus.Metrics.CreateGauge(
        "serving_webhook_relay_failures", "Consecutive failed relay rounds (0 when the relay is healthy).");

    private readonly RedisStreamGroup _group = new(
        redis.GetDatabase(), [.. RedisJobStore.Shards.Select(RedisJobStore.EventStream)], Group, options.Value.RelayClaimIdle, clock);
    private int _failures;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        while (!stoppingToken.IsCancellationRequested)
        {
            TimeSpan pause;
            try
            {
                var read = await PumpAsync().ConfigureAwait(false);
                _failures = 0;
                FailuresInRow.Set(0);
                pause = read < settings.RelayBatchSize ? settings.RelayPollInterval : TimeSpan.Zero;
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                FailuresInRow.Set(++_failures);
                pause = LedgerWriter.Backoff(_failures, settings.RelayPollInterval, settings.RelayMaxBackoff);
                LogRelayFailed(logger, _failures, pause.TotalSeconds, ex.Message);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            if (pause > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(pause, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>
    /// Relays one batch in stream order and acknowledges what was relayed; throws at the first entry
    /// that could not be (Redis or PostgreSQL down): it and those after it are read again next time.
    /// Not cancellable: an entry handed to Hangfire is acknowledged. Returns the entries read.
    /// </summary>
    public async Task<int> PumpAsync()
    {
        var entries = await _group.ReadAsync(options.Value.RelayBatchSize).ConfigureAwait(false);
        var done = new List<StreamEntryRef>(entries.Count);
        try
        {
            foreach (var entry in entries)
            {
                await RelayAsync(entry.Entry).ConfigureAwait(false);
                done.Add(entry);
            }
        }
        finally
        {
            await _group.AckAsync(done).ConfigureAwait(false);
            Relayed.Inc(done.Count);
        }

        return entries.Count;
    }

    private async Task RelayAsync(StreamEntry entry)
    {
        if (JobEvent.Parse(entry) is not { } e)
        {
            // Trimmed while pending, or not written by the store's scripts: nothing to deliver.
            LogMalformed(logger, entry.Id.ToString());
            return;
        }

        var job = await store.GetAsync(e.JobId, includeOutput: e.Type == WebhookEvents.Completed).ConfigureAwait(false);
        if (job is null)
        {
            return; // gone (its status retention passed): there is no job left to describe
        }

        // The event joins the job's trace through the traceparent stored at submit: the relay runs on
        // its own loop, far from the request, and the job may have been submitted by another API.
        using var activity = ServingTelemetry.StartFromStored("job.event.relay", job.TraceParent, System.Diagnostics.ActivityKind.Consumer);
        activity?.SetTag(ServingTelemetry.JobIdTag, job.Id);
        activity?.SetTag(ServingTelemetry.EventTypeTag, "job." + e.Type);
        WebhookSubscription? webhook;
        WebhookMessage message;
        try
        {
            webhook = WebhookSubscription.FromJson(job.WebhookJson);
            if (webhook is null || !webhook.Wants(e.Type) || (e.Type == WebhookEvents.Progress && JobStatuses.IsTerminal(job.Status)))
            {
                // A job that ended before its progress was relayed: that progress is stale, its completion follows.
                return;
            }

            var type = "job." + e.Type;
            var body = JsonSerializer.Serialize(new WebhookPayload(type, e.At.UtcDateTime, JobResource.From(e.View(job))), json.Value.SerializerOptions);
            message = new WebhookMessage(job.TenantId, job.Id, webhook.Url, type, e.MessageId, body,
                ServingTelemetry.TraceParent(activity) ?? job.TraceParent);
        }
        catch (JsonException ex)
        {
            // Stored data that does not read back (it passed validation once): skipped, never retried forever.
            LogUnreadable(logger, e.JobId, ex.Message);
            return;
        }

        activity?.SetTag(ServingTelemetry.WebhookIdTag, message.MessageId);
        var hangfireJob = jobs.Enqueue<WebhookDelivery>(d => d.DeliverAsync(message, 1, CancellationToken.None));
        LogEnqueued(logger, message.MessageId, hangfireJob);
    }

    [LoggerMessage(EventId = 720, Level = LogLevel.Debug, Message = "Webhook {MessageId} enqueued as Hangfire job {HangfireJobId}")]
    private static partial void LogEnqueued(ILogger logger, string messageId, string hangfireJobId);

    [LoggerMessage(EventId = 721, Level = LogLevel.Warning, Message = "Webhook relay round failed ({Failures} in a row), retrying in {Seconds:F1} s: {Reason}")]
    private static partial void LogRelayFailed(ILogger logger, int failures, double seconds, string reason);

    [LoggerMessage(EventId = 722, Level = LogLevel.Warning, Message = "Outbox entry {EntryId} has no job event in it; skipped")]
    private static partial void LogMalformed(ILogger logger, string entryId);

    [LoggerMessage(EventId = 723, Level = LogLevel.Error, Message = "Job {JobId}: stored data does not read back, its event is skipped: {Reason}")]
    private static partial void LogUnreadable(ILogger logger, string jobId, string reason);
}

/// <summary>One outbox entry, as the store's scripts write it.</summary>
internal sealed record JobEvent(string JobId, string Type, string Status, DateTimeOffset At, int Attempt, double Progress, DateTimeOffset? StartedAt, int Round)
{
    /// <summary>
    /// Stable per event: a receiver that sees it twice (a retry, a relayed copy) can drop the copy.
    /// A job's first start and first completion keep the short ids of earlier versions.
    /// </summary>
    public string MessageId => Type switch
    {
        WebhookEvents.Started => Attempt > 1 ? $"msg_{JobId}_started_{Attempt}" : $"msg_{JobId}_started",
        WebhookEvents.Progress => $"msg_{JobId}_progress_{(int)Math.Round(Progress * 1000)}" + (Attempt > 1 ? $"_{Attempt}" : string.Empty),
        _ => Round > 0 ? $"msg_{JobId}_completed_{Round}" : $"msg_{JobId}_completed",
    };

    /// <summary>
    /// The job as the event saw it. An ended job no longer changes, so it is shown as stored; a
    /// start or progress shows the running job of that attempt, whatever happened to it since.
    /// </summary>
    public JobRecord View(JobRecord job)
    {
        if (Type == WebhookEvents.Completed)
        {
            return job;
        }

        var startedAt = Type == WebhookEvents.Started ? At : StartedAt;
        return job with
        {
            Status = JobStatuses.Running,
            StartedAt = startedAt,
            QueueMs = startedAt is { } s ? (long)(s - job.CreatedAt).TotalMilliseconds : null,
            CompletedAt = null,
            ExecutionMs = null,
            Progress = Type == WebhookEvents.Progress ? Progress : 0,
            Attempts = Attempt,
            OutputJson = null,
            ErrorCode = null,
            ErrorMessage = null,
            ResultExpiresAt = null,
        };
    }

    public static JobEvent? Parse(StreamEntry entry)
    {
        if (entry.IsNull || entry.Values is not { Length: > 0 })
        {
            return null;
        }

        var id = entry["id"];
        var type = entry["type"].ToString();
        if (id.IsNullOrEmpty || !type.StartsWith("job.", StringComparison.Ordinal) || !entry["at"].TryParse(out long at))
        {
            return null;
        }

        return new JobEvent(
            id.ToString(),
            type["job.".Length..],
            entry["status"].ToString(),
            DateTimeOffset.FromUnixTimeMilliseconds(at),
            entry["attempt"].TryParse(out int attempt) ? attempt : 1,
            double.TryParse(entry["progress"].ToString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var progress) ? progress : 0,
            entry["started_at"].TryParse(out long startedAt) ? DateTimeOffset.FromUnixTimeMilliseconds(startedAt) : null,
            entry["round"].TryParse(out int round) ? round : 0);
    }
}
