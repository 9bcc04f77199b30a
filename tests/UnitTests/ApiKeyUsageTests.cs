using Async.Serving.Api.Auth;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Async.Serving.UnitTests;

public sealed class ApiKeyUsageTests : IAsyncDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    // Nothing listens on port 1 of the loopback address: every write fails at once.
    private readonly NpgsqlDataSource _unreachable = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Timeout=2;Pooling=false");

    private ApiKeyUsage Usage(TimeSpan precision) => new(
        new ApiKeyStore(_unreachable, TimeProvider.System),
        Options.Create(new ApiKeyOptions { LastUsedPrecision = precision }),
        TimeProvider.System,
        NullLogger<ApiKeyUsage>.Instance);

    [Fact]
    public void A_key_is_noted_for_writing_at_most_once_per_precision()
    {
        var usage = Usage(TimeSpan.FromMinutes(1));
        var key = Guid.NewGuid();
        var other = Guid.NewGuid();

        Assert.True(usage.Record(key, T0));
        for (var s = 1; s < 60; s++)
        {
            Assert.False(usage.Record(key, T0.AddSeconds(s)));
        }

        Assert.True(usage.Record(other, T0.AddSeconds(30)));
        Assert.Equal(2, usage.PendingCount);
        Assert.True(usage.Record(key, T0.AddMinutes(1)));
        Assert.Equal(2, usage.PendingCount); // the newer use replaces the one not written yet
    }

    [Fact]
    public async Task A_write_that_fails_keeps_the_uses_for_the_next_flush_and_does_not_throw()
    {
        var usage = Usage(TimeSpan.FromHours(1));
        var key = Guid.NewGuid();
        Assert.True(usage.Record(key, DateTimeOffset.UtcNow));

        await usage.FlushAsync(CancellationToken.None);
        await usage.FlushAsync(CancellationToken.None);

        Assert.Equal(1, usage.PendingCount);
        Assert.False(usage.Record(key, DateTimeOffset.UtcNow)); // still throttled: no second entry
        Assert.Equal(1, usage.PendingCount);
    }

    public async ValueTask DisposeAsync() => await _unreachable.DisposeAsync();
}
