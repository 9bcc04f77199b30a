using System.Text.Json;
using Async.Serving.Api.Webhooks;
using Hangfire;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Batches;

/// <summary>The JSON body of a <c>batch.completed</c> delivery: <c>data</c> is the Batch resource.</summary>
public sealed record BatchWebhookPayload(string Type, DateTime Timestamp, BatchResource Data);

/// <summary>
/// Ends batches whose lines have all ended (<see cref="BatchStore.CompleteIfDoneAsync"/>: exactly one
/// caller ends each) and hands the <c>batch.completed</c> webhook of each to Hangfire, signed and retried
/// like a job's (<see cref="WebhookDelivery"/>), under the stable id <c>msg_{batch id}_completed</c>.
/// </summary>
public sealed partial class BatchCompletion(
    BatchStore store,
    IBackgroundJobClient hangfire,
    IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json,
    ILogger<BatchCompletion> logger)
{
    public const string EventType = "batch.completed";

    public async Task CheckAsync(IEnumerable<string> batchIds, CancellationToken cancellationToken)
    {
        foreach (var batch in await store.CompleteIfDoneAsync(batchIds, cancellationToken).ConfigureAwait(false))
        {
            LogEnded(logger, batch.Id, batch.Status, batch.Total);
            if (batch.WebhookUrl is not null)
            {
                await AnnounceAsync(batch, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Enqueues the batch's webhook and notes that it did. Should the process stop in between, the
    /// sweep (<see cref="BatchRunner.SweepAsync"/>) enqueues it later; a receiver may then see the
    /// same <c>webhook-id</c> twice, as with any at-least-once delivery.
    /// </summary>
    public async Task AnnounceAsync(BatchRecord batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var at = (batch.CompletedAt ?? batch.CreatedAt).UtcDateTime;
        var body = JsonSerializer.Serialize(new BatchWebhookPayload(EventType, at, BatchResource.From(batch)), json.Value.SerializerOptions);
        var message = new WebhookMessage(batch.TenantId, batch.Id, batch.WebhookUrl!, EventType, $"msg_{batch.Id}_completed", body);
        var id = hangfire.Enqueue<WebhookDelivery>(d => d.DeliverAsync(message, 1, CancellationToken.None));
        await store.MarkWebhookEnqueuedAsync(batch.Id, cancellationToken).ConfigureAwait(false);
        LogAnnounced(logger, batch.Id, id);
    }

    [LoggerMessage(EventId = 870, Level = LogLevel.Information, Message = "Batch {BatchId} ended {Status} ({Total} lines)")]
    private static partial void LogEnded(ILogger logger, string batchId, string status, int total);

    [LoggerMessage(EventId = 871, Level = LogLevel.Debug, Message = "Batch {BatchId}: batch.completed enqueued as Hangfire job {HangfireJobId}")]
    private static partial void LogAnnounced(ILogger logger, string batchId, string hangfireJobId);
}
