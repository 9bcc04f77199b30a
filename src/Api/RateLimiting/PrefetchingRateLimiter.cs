using System.Diagnostics;
using System.Threading.RateLimiting;

namespace Async.Serving.Api.RateLimiting;

/// <summary>
/// A fleet-wide limiter (here the Redis token bucket) in front of which this process takes its
/// tokens a few at a time: one round trip to the shared bucket buys <see cref="Chunk"/> tokens, and
/// the requests that follow spend them here, synchronously, until they run out or grow old. A token
/// taken from the shared bucket and not spent is lost, never given twice, so the fleet still admits
/// no more than the bucket grants: each process holding at most a chunk it has not spent makes the
/// limit a little stricter, never looser. Tokens are kept at most <see cref="MaxAge"/> (one refill
/// period), so a process cannot save them up and spend a burst the bucket has already refilled for.
/// When the shared bucket cannot give a whole chunk, one token is asked for, so the bucket's last
/// tokens are not out of reach; a refusal is the shared limiter's own lease (its Retry-After).
/// </summary>
internal sealed class PrefetchingRateLimiter(RateLimiter shared, int chunk, TimeSpan maxAge, TimeProvider clock) : RateLimiter
{
    private static readonly RateLimitLease Granted = new Lease(true);

    // Not a refusal: "not without waiting", after which ASP.NET Core's middleware calls AcquireAsync.
    private static readonly RateLimitLease NotWithoutWaiting = new Lease(false);

    private readonly SemaphoreSlim _refill = new(1, 1);
    private readonly Lock _lock = new();
    private int _tokens;
    private long _takenAt;

    public int Chunk { get; } = chunk >= 1 ? chunk : throw new ArgumentOutOfRangeException(nameof(chunk));

    public TimeSpan MaxAge { get; } = maxAge;

    public override TimeSpan? IdleDuration => shared.IdleDuration;

    public override RateLimiterStatistics? GetStatistics() => shared.GetStatistics();

    protected override RateLimitLease AttemptAcquireCore(int permitCount) =>
        permitCount == 0 || TrySpend(permitCount) ? Granted : NotWithoutWaiting;

    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
    {
        if (permitCount == 0 || TrySpend(permitCount))
        {
            return Granted;
        }

        if (permitCount > 1)
        {
            return await shared.AcquireAsync(permitCount, cancellationToken).ConfigureAwait(false);
        }

        // One refill at a time: requests that arrive while it runs spend what it bought.
        await _refill.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (TrySpend(1))
            {
                return Granted;
            }

            if (Chunk > 1)
            {
                using var lease = await shared.AcquireAsync(Chunk, cancellationToken).ConfigureAwait(false);
                if (lease.IsAcquired)
                {
                    lock (_lock)
                    {
                        _tokens = Chunk - 1;
                        _takenAt = clock.GetTimestamp();
                    }

                    return Granted;
                }
            }

            return await shared.AcquireAsync(1, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _refill.Release();
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            shared.Dispose();
            _refill.Dispose();
        }

        base.Dispose(disposing);
    }

    protected override async ValueTask DisposeAsyncCore()
    {
        await shared.DisposeAsync().ConfigureAwait(false);
        _refill.Dispose();
    }

    private bool TrySpend(int permitCount)
    {
        lock (_lock)
        {
            if (_tokens < permitCount)
            {
                return false;
            }

            if (clock.GetElapsedTime(_takenAt) > MaxAge)
            {
                _tokens = 0;
                return false;
            }

            _tokens -= permitCount;
            return true;
        }
    }

    private sealed class Lease(bool acquired) : RateLimitLease
    {
        public override bool IsAcquired => acquired;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }
    }
}
