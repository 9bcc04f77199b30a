using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using System.Globalization;
using Async.Serving.Jobs;
using Async.Serving.Models;
using Async.Serving.Redis;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Api.Jobs;

/// <summary>Section <c>Serving:Queues</c>.</summary>
public sealed class QueueOptions
{
    public const string Section = "Serving:Queues";

    /// <summary>Ready messages a model's queues may hold (all priority lanes together) before submits get 503 <c>queue_full</c>; 0 means no limit.</summary>
    [Range(0, long.MaxValue)]
    public long MaxDepth { get; set; } = 100_000;

    /// <summary>How long a measured depth is reused (by every API instance, through Redis), so a burst of submits costs one broker round trip.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan DepthCacheTime { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>What <c>Retry-After</c> says when a queue is full.</summary>
    [Range(1, 3600)]
    public int RetryAfterSeconds { get; set; } = 5;
}

/// <summary>
/// Whether a model's queues are full, for the whole fleet of API instances. The depth (the model's
/// queued jobs, every priority lane: submitted and not started, from the job store's queued-by-model
/// index) is measured in jobs, not broker messages, since under load one message carries several
/// jobs (docs/worker.md, "Jobs per message"); it is shared through Redis for <see cref="QueueOptions.DepthCacheTime"/>:
/// hash <c>queue-depth:&lt;model id&gt;</c> holds the measured <c>depth</c> and the submits any
/// instance <c>admitted</c> since, so that within one cache window the instances together admit no
/// more than the limit leaves (a per-process cache would let each of N instances admit that much).
/// An admitted submit that then makes no job (a failed publish) still counts until the next
/// measurement, which errs on the safe side. Far from the limit an instance takes admissions a chunk
/// at a time (<see cref="ChunkOf"/>: a thousandth of the limit, at most 100) and spends them without
/// asking Redis until the measurement they were counted against expires; near the limit, and for
/// limits under 2,000, one at a time. The fleet still admits no more than the limit leaves: a chunk
/// is counted in Redis when it is taken. When the job store cannot be read, the depth is unknown
/// and submits go on (storing the job then fails on its own). With a cache time of zero every
/// submit measures, and nothing is shared or counted.
/// </summary>
internal sealed class QueueDepthProbe(RedisJobStore store, IOptions<QueueOptions> options, IConnectionMultiplexer redis) : IDisposable
{
    // Returns {the fleet's depth (measured + admitted since), the admissions granted (up to @take,
    // at most what @max leaves; counted as admitted), the measurement's remaining life in ms};
    // {-1, 0, 0} when no measurement is fresh and none was given (@measured is '').
    private static readonly RedisScript AdmitScript = RedisScript.Prepare("""
        local depth = redis.call('HGET', @key, 'depth')
        if not depth then
          if @measured == '' then return {-1, 0, 0} end
          redis.call('HSET', @key, 'depth', @measured, 'admitted', 0)
          redis.call('PEXPIRE', @key, @ttl)
          depth = @measured
        end
        local total = tonumber(depth) + tonumber(redis.call('HGET', @key, 'admitted') or '0')
        local granted = math.max(0, math.min(tonumber(@take), tonumber(@max) - total))
        if granted > 0 then redis.call('HINCRBY', @key, 'admitted', granted) end
        return {total, granted, redis.call('PTTL', @key)}
        """);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Grant> _grants = new(StringComparer.Ordinal);

    /// <summary>
    /// Admissions this instance took from the fleet's count and has not spent yet, usable until the
    /// measurement they were counted against expires; <see cref="Refill"/> is the one request for more in flight.
    /// </summary>
    private sealed class Grant
    {
        public long Remaining;
        public long UntilTimestamp;
        public Task<bool>? Refill;
    }

    /// <summary>How many admissions one Redis round trip takes for a limit of <paramref name="maxDepth"/>: a thousandth of it, from 1 to 100.</summary>
    public static long ChunkOf(long maxDepth) => Math.Clamp(maxDepth / 1000, 1, 100);

    /// <summary>The Redis key of a model's shared depth.</summary>
    public static RedisKey SharedKey(ModelEntry model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return "queue-depth:" + model.Id;
    }

    /// <summary>
    /// Whether the model's backlog, its queued jobs over every priority lane plus what the fleet
    /// admitted since they were counted, reached <see cref="QueueOptions.MaxDepth"/>. A submit
    /// told "not full" is counted as admitted.
    /// </summary>
    public async Task<bool> IsFullAsync(ModelEntry model, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        var settings = options.Value;
        if (settings.MaxDepth <= 0)
        {
            return false;
        }

        if (settings.DepthCacheTime <= TimeSpan.Zero)
        {
            return await MeasureAsync(model, cancellationToken).ConfigureAwait(false) is { } depth && depth >= settings.MaxDepth;
        }

        var grant = _grants.GetOrAdd(model.Id, _ => new Grant());
        while (true)
        {
            Task<bool> refill;
            lock (grant)
            {
                if (grant.Remaining > 0 && Stopwatch.GetTimestamp() < grant.UntilTimestamp)
                {
                    grant.Remaining--;
                    return false;
                }

                // One request for more at a time; the submits that find it running wait for its answer.
                refill = grant.Refill ??= RefillAsync(model, grant);
            }

            if (await refill.WaitAsync(cancellationToken).ConfigureAwait(false))
            {
                return true;
            }
        }
    }

    /// <summary>Takes a chunk of admissions for <paramref name="grant"/>; true when the queue is full (none granted).</summary>
    /// <remarks>Shared by the submits waiting for it, so no one submit's cancellation stops it: the broker's and Redis's own timeouts bound it.</remarks>
    private async Task<bool> RefillAsync(ModelEntry model, Grant grant)
    {
        // Called under the grant's lock to become its Refill: nothing runs before the caller has stored
        // the task, so the finally below can never clear Refill before it is set (and leave it set for good).
        await Task.Yield();
        try
        {
            var take = ChunkOf(options.Value.MaxDepth);
            var admit = await AdmitAsync(model, null, take).ConfigureAwait(false);
            if (admit.Total < 0)
            {
                // No fresh measurement: one submit per instance at a time measures; the others
                // then find what it (or another instance) wrote.
                await _gate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
                try
                {
                    admit = await AdmitAsync(model, null, take).ConfigureAwait(false);
                    if (admit.Total < 0)
                    {
                        if (await MeasureAsync(model, CancellationToken.None).ConfigureAwait(false) is not { } measured)
                        {
                            // Unknown: storing the job decides. One admission, for this round only.
                            admit = (0, 1, 0);
                        }
                        else
                        {
                            admit = await AdmitAsync(model, measured, take).ConfigureAwait(false);
                        }
                    }
                }
                finally
                {
                    _gate.Release();
                }
            }

            lock (grant)
            {
                // Admissions live as long as the measurement they were counted against; the one given
                // without a measurement (the job store could not be read) only as long as its waiters need.
                grant.Remaining = admit.Granted;
                var lifeMs = admit.TtlMs > 0 ? admit.TtlMs : 10;
                grant.UntilTimestamp = Stopwatch.GetTimestamp() + (lifeMs * Stopwatch.Frequency / 1000);
            }

            return admit.Granted == 0;
        }
        finally
        {
            lock (grant)
            {
                grant.Refill = null;
            }
        }
    }

    public void Dispose() => _gate.Dispose();

    private async Task<(long Total, long Granted, long TtlMs)> AdmitAsync(ModelEntry model, long? measured, long take)
    {
        var settings = options.Value;
        var result = (RedisResult[])(await AdmitScript.EvaluateAsync(redis.GetDatabase(), new
        {
            key = SharedKey(model),
            measured = measured?.ToString(CultureInfo.InvariantCulture) ?? string.Empty,
            ttl = (long)Math.Max(1, settings.DepthCacheTime.TotalMilliseconds),
            max = settings.MaxDepth,
            take,
        }).ConfigureAwait(false))!;
        return ((long)result[0], (long)result[1], (long)result[2]);
    }

    /// <summary>
    /// The model's queued jobs, every lane (the job store's queued-by-model index: one pipelined read
    /// per shard); null when Redis cannot be read.
    /// </summary>
    private async Task<long?> MeasureAsync(ModelEntry model, CancellationToken cancellationToken)
    {
        try
        {
            var queued = await store.QueuedByModelAsync([model.Id]).WaitAsync(cancellationToken).ConfigureAwait(false);
            return queued[model.Id].Queued;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return null;
        }
    }
}
