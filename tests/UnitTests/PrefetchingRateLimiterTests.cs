using System.Threading.RateLimiting;
using Async.Serving.Api.RateLimiting;

namespace Async.Serving.UnitTests;

/// <summary>
/// The per-process token prefetch in front of the fleet's bucket: it never admits more than the
/// shared bucket granted, asks it once per chunk, can still reach the bucket's last tokens, drops
/// tokens kept too long and passes the bucket's refusal (with its Retry-After) through.
/// </summary>
public sealed class PrefetchingRateLimiterTests
{
    [Fact]
    public async Task One_round_trip_to_the_shared_bucket_buys_a_chunk()
    {
        var shared = new CountingLimiter(tokens: 1000);
        using var limiter = new PrefetchingRateLimiter(shared, chunk: 10, TimeSpan.FromSeconds(1), new ManualClock());

        for (var i = 0; i < 95; i++)
        {
            using var lease = await Acquire(limiter);
            Assert.True(lease.IsAcquired);
        }

        Assert.Equal(10, shared.Calls);
        Assert.Equal(1000 - 100, shared.Tokens);
    }

    [Fact]
    public async Task Never_admits_more_than_the_shared_bucket_granted_and_reaches_its_last_tokens()
    {
        var shared = new CountingLimiter(tokens: 25);
        using var limiter = new PrefetchingRateLimiter(shared, chunk: 10, TimeSpan.FromSeconds(1), new ManualClock());

        var admitted = 0;
        for (var i = 0; i < 40; i++)
        {
            using var lease = await Acquire(limiter);
            admitted += lease.IsAcquired ? 1 : 0;
        }

        // Two chunks of 10, then the last 5 one at a time: all 25, and not one more.
        Assert.Equal(25, admitted);
        Assert.Equal(0, shared.Tokens);
    }

    [Fact]
    public async Task A_refusal_is_the_shared_bucket_s_lease_with_its_retry_after()
    {
        var shared = new CountingLimiter(tokens: 0);
        using var limiter = new PrefetchingRateLimiter(shared, chunk: 5, TimeSpan.FromSeconds(1), new ManualClock());

        using var lease = await Acquire(limiter);

        Assert.False(lease.IsAcquired);
        Assert.True(lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter));
        Assert.Equal(TimeSpan.FromSeconds(1), retryAfter);
    }

    [Fact]
    public async Task Tokens_kept_longer_than_their_age_are_dropped()
    {
        var clock = new ManualClock();
        var shared = new CountingLimiter(tokens: 100);
        using var limiter = new PrefetchingRateLimiter(shared, chunk: 10, TimeSpan.FromSeconds(1), clock);

        using (var first = await Acquire(limiter))
        {
            Assert.True(first.IsAcquired);
        }

        clock.Advance(TimeSpan.FromSeconds(2));
        using (var second = await Acquire(limiter))
        {
            Assert.True(second.IsAcquired);
        }

        // The nine tokens left from the first chunk were too old: a second chunk was bought.
        Assert.Equal(2, shared.Calls);
        Assert.Equal(80, shared.Tokens);
    }

    [Fact]
    public async Task Spending_a_prefetched_token_needs_no_wait()
    {
        var shared = new CountingLimiter(tokens: 100);
        using var limiter = new PrefetchingRateLimiter(shared, chunk: 10, TimeSpan.FromSeconds(1), new ManualClock());

        using (var before = limiter.AttemptAcquire())
        {
            Assert.False(before.IsAcquired); // nothing prefetched yet: the caller goes on to AcquireAsync
        }

        using (var bought = await Acquire(limiter))
        {
            Assert.True(bought.IsAcquired);
        }

        using var spent = limiter.AttemptAcquire();
        Assert.True(spent.IsAcquired);
        Assert.Equal(1, shared.Calls);
    }

    [Theory]
    [InlineData(50, 100, 5)]
    [InlineData(1, 10, 1)]
    [InlineData(1_000_000, 1_000_000, 100)]
    [InlineData(1000, 20, 2)]
    public void The_chunk_is_a_tenth_of_the_smaller_limit_between_1_and_100(int perSecond, int burst, int chunk) =>
        Assert.Equal(chunk, PerKeyRateLimiting.PrefetchChunk(new RateLimitOptions { PermitsPerSecond = perSecond, Burst = burst }));

    private static ValueTask<RateLimitLease> Acquire(RateLimiter limiter) => limiter.AcquireAsync(1, CancellationToken.None);

    /// <summary>A shared bucket with a fixed number of tokens and no refill, counting the acquisitions asked of it.</summary>
    private sealed class CountingLimiter(int tokens) : RateLimiter
    {
        public int Tokens { get; private set; } = tokens;

        public int Calls { get; private set; }

        public override TimeSpan? IdleDuration => null;

        public override RateLimiterStatistics? GetStatistics() => null;

        protected override RateLimitLease AttemptAcquireCore(int permitCount) => throw new InvalidOperationException("the prefetch must not ask the shared bucket synchronously");

        protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
        {
            Calls++;
            if (Tokens >= permitCount)
            {
                Tokens -= permitCount;
                return ValueTask.FromResult<RateLimitLease>(new Result(true));
            }

            return ValueTask.FromResult<RateLimitLease>(new Result(false));
        }

        private sealed class Result(bool acquired) : RateLimitLease
        {
            public override bool IsAcquired => acquired;

            public override IEnumerable<string> MetadataNames => acquired ? [] : [MetadataName.RetryAfter.Name];

            public override bool TryGetMetadata(string metadataName, out object? metadata)
            {
                metadata = !acquired && metadataName == MetadataName.RetryAfter.Name ? TimeSpan.FromSeconds(1) : null;
                return metadata is not null;
            }
        }
    }

    private sealed class ManualClock : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
