using StackExchange.Redis;

namespace Async.Serving.Models;

/// <summary>
/// Which workers serve which model, by heartbeat: each worker stamps a sorted set per model every
/// few seconds; a worker whose last stamp is older than <see cref="LiveWindow"/> no longer counts.
/// </summary>
public sealed class WorkerRegistry(IConnectionMultiplexer redis, TimeProvider clock)
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan LiveWindow = TimeSpan.FromSeconds(15);

    private readonly IDatabase _db = redis.GetDatabase();

    private static RedisKey Beats(string modelId) => "model-workers:" + modelId;

    private static RedisKey Providers(string modelId) => "model-providers:" + modelId;

    public async Task BeatAsync(string workerId, IEnumerable<(string ModelId, string Provider)> models)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var batch = _db.CreateBatch();
        var tasks = new List<Task>();
        foreach (var (modelId, provider) in models)
        {
            tasks.Add(batch.SortedSetAddAsync(Beats(modelId), workerId, now));
            tasks.Add(batch.SortedSetRemoveRangeByScoreAsync(Beats(modelId), double.NegativeInfinity, now - (LiveWindow.TotalMilliseconds * 4)));
            tasks.Add(batch.HashSetAsync(Providers(modelId), workerId, provider));
            tasks.Add(batch.KeyExpireAsync(Beats(modelId), LiveWindow * 8));
            tasks.Add(batch.KeyExpireAsync(Providers(modelId), LiveWindow * 8));
        }

        batch.Execute();
        await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    public async Task LeaveAsync(string workerId, IEnumerable<string> modelIds)
    {
        foreach (var modelId in modelIds)
        {
            await _db.SortedSetRemoveAsync(Beats(modelId), workerId).ConfigureAwait(false);
            await _db.HashDeleteAsync(Providers(modelId), workerId).ConfigureAwait(false);
        }
    }

    /// <summary>The last heartbeat of <paramref name="workerId"/> for the model; null when none is kept (beats older than a minute are pruned).</summary>
    public async Task<DateTimeOffset?> LastBeatAsync(string workerId, string modelId)
    {
        var score = await _db.SortedSetScoreAsync(Beats(modelId), workerId).ConfigureAwait(false);
        return score is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds((long)ms) : null;
    }

    /// <summary>Live workers of a model and the execution providers they run it on.</summary>
    public async Task<(int Workers, string[] Providers)> LiveAsync(string modelId)
    {
        var since = clock.GetUtcNow().ToUnixTimeMilliseconds() - LiveWindow.TotalMilliseconds;
        var live = await _db.SortedSetRangeByScoreAsync(Beats(modelId), since, double.PositiveInfinity).ConfigureAwait(false);
        if (live.Length == 0)
        {
            return (0, []);
        }

        var providers = await _db.HashGetAsync(Providers(modelId), live).ConfigureAwait(false);
        return (live.Length, [.. providers.Where(p => !p.IsNull).Select(p => p.ToString()).Distinct().Order(StringComparer.Ordinal)]);
    }
}
