using Async.Serving.Jobs;

namespace Async.Serving.Api.Observability;

/// <summary>
/// At start, once per Redis: the jobs queued before this version kept the queued-by-model index
/// (<see cref="RedisJobStore.QueuedByModel"/>) are added to it, so the queue depth and oldest queued
/// age count them after an upgrade. Redis being away only delays it to the next start.
/// </summary>
internal sealed partial class QueuedByModelBackfill(RedisJobStore store, ILogger<QueuedByModelBackfill> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            var added = await store.BackfillQueuedByModelAsync(cancellationToken).ConfigureAwait(false);
            if (added > 0)
            {
                LogBackfilled(logger, added);
            }
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            LogNotBackfilled(logger, ex.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 801, Level = LogLevel.Information, Message = "Queued jobs indexed by model: {Added} jobs queued before the upgrade")]
    private static partial void LogBackfilled(ILogger logger, int added);

    [LoggerMessage(EventId = 802, Level = LogLevel.Warning, Message = "Queued jobs not indexed by model (Redis unavailable; tried again at the next start): {Reason}")]
    private static partial void LogNotBackfilled(ILogger logger, string reason);
}
