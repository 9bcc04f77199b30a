using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Async.Serving.Jobs;
using StackExchange.Redis;

namespace Async.Serving.Api.Jobs;

/// <summary>
/// Waits for job changes without polling: every state change is published on
/// <c>job-changed:{id}</c> by the store's scripts, and a waiter subscribes to that one channel for
/// as long as it waits. The subscription is made before the first read, so no change is missed.
/// </summary>
internal sealed class JobWaiter(IConnectionMultiplexer redis, RedisJobStore store)
{
    /// <summary>The job once it is terminal, or as it stands when <paramref name="wait"/> runs out.</summary>
    public async Task<JobRecord?> WaitForTerminalAsync(string id, TimeSpan wait, CancellationToken cancellationToken)
    {
        JobRecord? last = null;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(wait);
        try
        {
            await foreach (var job in WatchAsync(id, timeout.Token).ConfigureAwait(false))
            {
                last = job;
                if (JobStatuses.IsTerminal(job.Status))
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // waited long enough: answer with the job as it stands
        }

        return last ?? await store.GetAsync(id).ConfigureAwait(false);
    }

    /// <summary>The job now, then again after each change, until it is terminal or gone.</summary>
    public async IAsyncEnumerable<JobRecord> WatchAsync(string id, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var changes = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
        var subscriber = redis.GetSubscriber();
        var channel = RedisJobStore.ChangedChannel(id);
        void OnChange(RedisChannel _, RedisValue __) => changes.Writer.TryWrite(true);
        await subscriber.SubscribeAsync(channel, OnChange).ConfigureAwait(false);
        try
        {
            while (true)
            {
                var job = await store.GetAsync(id).ConfigureAwait(false);
                if (job is null)
                {
                    yield break;
                }

                yield return job;
                if (JobStatuses.IsTerminal(job.Status))
                {
                    yield break;
                }

                await changes.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            await subscriber.UnsubscribeAsync(channel, OnChange).ConfigureAwait(false);
        }
    }
}
