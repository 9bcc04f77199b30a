using Async.Serving.Api.Webhooks;
using Async.Serving.Breakers;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The shared circuit breaker's scripts (<see cref="RedisCircuitBreaker"/>) on a single Redis server
/// and on the test run's Redis Cluster (an undeclared key or keys of two slots fail there), with a
/// clock the test moves: every transition of the state machine, without waiting.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class BreakerStateMachineTests
{
    private static readonly BreakerPolicy Policy = new(Threshold: 3, Window: TimeSpan.FromSeconds(10), CoolDown: TimeSpan.FromSeconds(30));
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(5);

    private sealed class ManualClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static Task<(BreakerState? Entered, IReadOnlyList<string> Released)> FailAsync(RedisCircuitBreaker breaker, string name, bool probe = false) =>
        breaker.ReportAsync(name, success: false, probe, Policy, "503 Service Unavailable", CancellationToken.None);

    [Theory]
    [MemberData(nameof(JobStoreTests.Servers), MemberType = typeof(JobStoreTests))]
    public async Task Failures_open_the_breaker_the_cool_down_lets_one_probe_through_and_its_outcome_closes_or_reopens_it(string server)
    {
        using var redis = JobStoreTests.Connect(server);
        var clock = new ManualClock();
        var breaker = new RedisCircuitBreaker(redis, "test-" + Guid.NewGuid().ToString("N")[..8], clock);
        var name = "https://hooks.example.com:443";

        // Closed: failures count, a success clears them, so only consecutive failures open it.
        Assert.Equal(BreakerDecision.Allow, (await breaker.AcquireAsync(name, Lease, CancellationToken.None)).Decision);
        await FailAsync(breaker, name);
        await FailAsync(breaker, name);
        Assert.Equal(2, (await breaker.GetAsync(name, 10, CancellationToken.None)).Failures);
        await breaker.ReportAsync(name, success: true, probe: false, Policy, null, CancellationToken.None);
        Assert.Equal(0, (await breaker.GetAsync(name, 10, CancellationToken.None)).Failures);

        // Failures further apart than the window start the count again.
        await FailAsync(breaker, name);
        await FailAsync(breaker, name);
        clock.Now += TimeSpan.FromSeconds(11);
        Assert.Null((await FailAsync(breaker, name)).Entered);
        Assert.Equal(1, (await breaker.GetAsync(name, 10, CancellationToken.None)).Failures);

        // Three in a row: open for the cool-down; nothing is allowed, and the caller learns until when.
        await FailAsync(breaker, name);
        Assert.Equal(BreakerState.Open, (await FailAsync(breaker, name)).Entered);
        var openUntil = clock.Now + Policy.CoolDown;
        var snapshot = await breaker.GetAsync(name, 10, CancellationToken.None);
        Assert.Equal(BreakerState.Open, snapshot.State);
        Assert.Equal(openUntil, snapshot.OpenUntil);
        Assert.Equal("503 Service Unavailable", snapshot.LastError);
        Assert.Contains(await breaker.NotClosedAsync(1000, 10, CancellationToken.None), b => b.Name == name);
        clock.Now = openUntil - TimeSpan.FromMilliseconds(1);
        var held = await breaker.AcquireAsync(name, Lease, CancellationToken.None);
        Assert.Equal(BreakerDecision.Reject, held.Decision);
        Assert.Equal(openUntil, held.RetryAt);
        await breaker.HoldAsync(name, "hangfire-1", openUntil, CancellationToken.None);
        await breaker.HoldAsync(name, "hangfire-2", openUntil, CancellationToken.None);

        // Cool-down over: one probe (half-open), the others wait for its lease; its failure opens it again.
        clock.Now = openUntil;
        var probe = await breaker.AcquireAsync(name, Lease, CancellationToken.None);
        Assert.Equal(BreakerDecision.Probe, probe.Decision);
        Assert.Equal(BreakerState.HalfOpen, probe.EnteredState);
        var other = await breaker.AcquireAsync(name, Lease, CancellationToken.None);
        Assert.Equal(BreakerDecision.Reject, other.Decision);
        Assert.Equal(clock.Now + Lease, other.RetryAt);
        Assert.Null((await FailAsync(breaker, name, probe: false)).Entered); // a non-probe's late failure changes nothing
        Assert.Equal(BreakerState.Open, (await FailAsync(breaker, name, probe: true)).Entered);
        Assert.Equal(clock.Now + Policy.CoolDown, (await breaker.GetAsync(name, 10, CancellationToken.None)).OpenUntil);

        // Next cool-down: a probe that never reports loses its lease, and the next caller probes.
        clock.Now += Policy.CoolDown;
        Assert.Equal(BreakerDecision.Probe, (await breaker.AcquireAsync(name, Lease, CancellationToken.None)).Decision);
        clock.Now += Lease;
        var second = await breaker.AcquireAsync(name, Lease, CancellationToken.None);
        Assert.Equal(BreakerDecision.Probe, second.Decision);
        Assert.Null(second.EnteredState); // still half-open: no new transition

        // The probe succeeds: closed, no state left, and the held work is handed back once.
        var (entered, released) = await breaker.ReportAsync(name, success: true, probe: true, Policy, null, CancellationToken.None);
        Assert.Equal(BreakerState.Closed, entered);
        Assert.Equal(["hangfire-1", "hangfire-2"], released.Order(StringComparer.Ordinal));
        var closed = await breaker.GetAsync(name, 10, CancellationToken.None);
        Assert.Equal(BreakerState.Closed, closed.State);
        Assert.Empty(closed.Held);
        Assert.DoesNotContain(await breaker.NotClosedAsync(1000, 10, CancellationToken.None), b => b.Name == name);
        Assert.Equal(BreakerDecision.Allow, (await breaker.AcquireAsync(name, Lease, CancellationToken.None)).Decision);

        // An operator's close works from any state and releases what was held.
        foreach (var _ in Enumerable.Range(0, 3))
        {
            await FailAsync(breaker, name);
        }

        await breaker.HoldAsync(name, "hangfire-3", clock.Now, CancellationToken.None);
        var (wasOpen, freed) = await breaker.CloseAsync(name, CancellationToken.None);
        Assert.True(wasOpen);
        Assert.Equal(["hangfire-3"], freed);
        Assert.False((await breaker.CloseAsync(name, CancellationToken.None)).WasOpen);
    }

    [Fact]
    public void A_webhook_breaker_is_per_scheme_host_and_port()
    {
        Assert.Equal("https://hooks.example.com:443", WebhookBreakers.HostOf("https://Hooks.Example.com/a?b=1"));
        Assert.Equal("https://hooks.example.com:443", WebhookBreakers.HostOf("https://hooks.example.com:443/other"));
        Assert.Equal("http://hooks.example.com:80", WebhookBreakers.HostOf("http://hooks.example.com/a"));
        Assert.Equal("https://hooks.example.com:8443", WebhookBreakers.HostOf("https://hooks.example.com:8443/a"));
    }
}
