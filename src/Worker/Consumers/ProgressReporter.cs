using Async.Serving.Jobs;
using Async.Serving.Worker.Inference;

namespace Async.Serving.Worker.Consumers;

/// <summary>
/// A running job's progress, coalesced: at most one update per interval reaches Redis (and through
/// it <c>GET ?wait</c>, the events stream and, when the job's webhook asked for progress, the
/// outbox). Values in between are dropped; the final 1.0 is written by the job's completion.
/// </summary>
internal sealed class ProgressReporter(
    RedisJobStore store, string jobId, string workerId, TimeSpan interval, TimeProvider clock) : IJobProgress
{
    private long _last = long.MinValue;
    private double _reported;

    public async ValueTask ReportAsync(double progress)
    {
        var now = clock.GetTimestamp();
        if (progress <= _reported || (_last != long.MinValue && clock.GetElapsedTime(_last, now) < interval))
        {
            return;
        }

        _last = now;
        _reported = progress;
        await store.SetProgressAsync(jobId, progress, workerId).ConfigureAwait(false);
    }
}
