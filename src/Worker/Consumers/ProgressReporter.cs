using Async.Serving.Contracts;
using Async.Serving.Jobs;
using Async.Serving.Worker.Video;
using MassTransit;

namespace Async.Serving.Worker.Consumers;

/// <summary>
/// A running job's progress, coalesced: at most one update per interval reaches Redis (and through
/// it <c>GET ?wait</c> and the events stream), and, when the job's webhook asked for progress, the
/// bus as <see cref="JobProgress"/>. Values in between are dropped; the final 1.0 is written by
/// the job's completion.
/// </summary>
internal sealed class ProgressReporter(
    RedisJobStore store, ConsumeContext<RunInference> context, string workerId, TimeSpan interval, TimeProvider clock) : IJobProgress
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
        var job = context.Message;
        if (!await store.SetProgressAsync(job.JobId, progress, workerId).ConfigureAwait(false) || !job.AnnounceProgress)
        {
            return;
        }

        await context.Publish(new JobProgress
        {
            JobId = job.JobId,
            TenantId = job.TenantId,
            Progress = Math.Round(progress, 4),
            At = clock.GetUtcNow(),
        }, context.CancellationToken).ConfigureAwait(false);
    }
}
