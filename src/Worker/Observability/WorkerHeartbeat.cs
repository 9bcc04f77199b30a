using Async.Serving.Models;
using Async.Serving.Worker.Inference;

namespace Async.Serving.Worker.Observability;

/// <summary>Announces the models this worker serves, every <see cref="WorkerRegistry.Interval"/>, once they are warm.</summary>
internal sealed partial class WorkerHeartbeat(ModelHost models, WorkerRegistry registry, ILogger<WorkerHeartbeat> logger) : BackgroundService
{
    public string WorkerId { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(WorkerRegistry.Interval);
        do
        {
            if (!models.IsReady)
            {
                continue;
            }

            try
            {
                await registry.BeatAsync(WorkerId, models.Served.Select(m => (m.Entry.Id, m.Provider))).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException
                || (ex is OperationCanceledException && !stoppingToken.IsCancellationRequested))
            {
                // A batch whose connection broke comes back cancelled: one missed beat, as a timeout is.
                // Anything here left unhandled would stop the whole worker (found by scripts/multihost.sh).
                LogBeatFailed(logger, ex.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await registry.LeaveAsync(WorkerId, models.Served.Select(m => m.Entry.Id)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            LogBeatFailed(logger, ex.Message);
        }
    }

    [LoggerMessage(EventId = 120, Level = LogLevel.Warning, Message = "Heartbeat failed: {Reason}")]
    private static partial void LogBeatFailed(ILogger logger, string reason);
}
