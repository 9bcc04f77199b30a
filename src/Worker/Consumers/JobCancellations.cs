using System.Collections.Concurrent;
using Async.Serving.Jobs;
using StackExchange.Redis;

namespace Async.Serving.Worker.Consumers;

/// <summary>
/// The jobs this worker is running, each with a token that a cancel request fires. The API
/// publishes the id of a running job it was asked to cancel on <see cref="RedisJobStore.CancelChannel"/>;
/// every worker hears it, and the one running that job stops it.
/// </summary>
internal sealed class JobCancellations(IConnectionMultiplexer redis) : IHostedService
{
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _running = new();

    /// <summary>Registers a job before it starts, so a cancel that arrives from then on is not missed.</summary>
    public Registration Register(string jobId)
    {
        var source = new CancellationTokenSource();
        _running[jobId] = source;
        return new Registration(this, jobId, source);
    }

    public Task StartAsync(CancellationToken cancellationToken) =>
        redis.GetSubscriber().SubscribeAsync(RedisJobStore.CancelChannel, (_, id) =>
        {
            if (!id.IsNullOrEmpty && _running.TryGetValue(id.ToString(), out var source))
            {
                source.Cancel();
            }
        });

    public Task StopAsync(CancellationToken cancellationToken) =>
        redis.GetSubscriber().UnsubscribeAsync(RedisJobStore.CancelChannel);

    internal sealed class Registration(JobCancellations owner, string jobId, CancellationTokenSource source) : IDisposable
    {
        public CancellationToken Token => source.Token;

        public void Dispose()
        {
            owner._running.TryRemove(new KeyValuePair<string, CancellationTokenSource>(jobId, source));
            source.Dispose();
        }
    }
}
