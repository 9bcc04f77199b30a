using System.Collections.Concurrent;
using Async.Serving.Breakers;
using Hangfire;
using Hangfire.States;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Api.Webhooks;

/// <summary>
/// The circuit breaker of each receiving host (scheme, host and port of a webhook URL), shared by
/// every API replica through Redis (<see cref="RedisCircuitBreaker"/>, family <c>webhook</c>).
/// Repeated failed attempts to a host open its breaker: nothing is sent there for the cool-down, and
/// deliveries that come due meanwhile are held (rescheduled, not attempted, see <see cref="WebhookDelivery"/>).
/// Then one delivery probes the host; its success closes the breaker and releases the held
/// deliveries at once (their scheduled Hangfire jobs are enqueued), its failure opens it again.
/// </summary>
/// <remarks>
/// Hand-written rather than Polly's circuit breaker (Microsoft.Extensions.Http.Resilience): Polly
/// keeps its state in the process, so each replica would learn a host is down on its own and keep
/// sending to it, and a half-open probe would go from every replica at once.
/// </remarks>
public sealed partial class WebhookBreakers(
    IConnectionMultiplexer redis,
    IBackgroundJobClient jobs,
    IOptions<WebhookBreakerOptions> options,
    IOptions<WebhookOptions> webhookOptions,
    TimeProvider clock,
    ILogger<WebhookBreakers> logger)
{
    public const string Family = "webhook";

    /// <summary>Held deliveries listed per host on the dashboard.</summary>
    public const int HeldShown = 20;

    private static readonly TimeSpan MetricsInterval = TimeSpan.FromSeconds(1);

    private static readonly Prometheus.Gauge State = Prometheus.Metrics.CreateGauge(
        "serving_webhook_breaker_state",
        "Circuit breaker of a webhook host (scheme://host:port): 0 closed, 1 half-open (one probe delivery goes), 2 open (deliveries held). "
        + "Read from Redis at scrape: every API instance reports the same values (aggregate with max).",
        new Prometheus.GaugeConfiguration { LabelNames = ["host"] });

    private static readonly Prometheus.Gauge Held = Prometheus.Metrics.CreateGauge(
        "serving_webhook_breaker_held_deliveries",
        "Deliveries to a webhook host held by its open or half-open breaker, waiting to be released. Read from Redis at scrape.",
        new Prometheus.GaugeConfiguration { LabelNames = ["host"] });

    private static readonly Prometheus.Counter Transitions = Prometheus.Metrics.CreateCounter(
        "serving_webhook_breaker_transitions_total",
        "Changes of a webhook host's circuit breaker made by this instance, by the state entered: open, half_open, closed. Sum over instances.",
        new Prometheus.CounterConfiguration { LabelNames = ["host", "to"] });

    private readonly RedisCircuitBreaker _breakers = new(redis, Family, clock);

    // Hosts this process has reported a gauge for: a breaker that closed reads 0 rather than vanishing.
    private readonly ConcurrentDictionary<string, byte> _reported = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _metricsGate = new(1, 1);
    private DateTimeOffset _metricsAt = DateTimeOffset.MinValue;

    public bool Enabled => options.Value.Enabled;

    public TimeSpan MaxHold => options.Value.MaxHold;

    /// <summary>The breaker's name for <paramref name="url"/>: scheme, host and port (<c>https://hooks.example.com:443</c>).</summary>
    public static string HostOf(string url)
    {
        var uri = new Uri(url);
        return $"{uri.Scheme}://{uri.IdnHost}:{uri.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)}".ToLowerInvariant();
    }

    /// <summary>
    /// Whether an attempt to <paramref name="host"/> may be sent now (always, when the breakers are
    /// off). A probe holds the host for one attempt's timeout plus a margin; a probe that never reports loses it.
    /// </summary>
    public async Task<BreakerPermit> AcquireAsync(string host, CancellationToken cancellationToken)
    {
        if (!Enabled)
        {
            return BreakerPermit.Allowed;
        }

        BreakerPermit permit;
        try
        {
            permit = await _breakers.AcquireAsync(host, webhookOptions.Value.Timeout + TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The breaker protects receivers; it must not stop deliveries while Redis is away.
            LogUnavailable(logger, host, ex.Message);
            return BreakerPermit.Allowed;
        }

        if (permit.EnteredState is { } entered)
        {
            Transitioned(host, entered, null);
        }

        return permit;
    }

    /// <summary>Reports an attempt that was sent: <paramref name="success"/> when the host answered (anything but 5xx), else the reason it failed.</summary>
    public async Task ReportAsync(string host, bool success, bool probe, string? error, CancellationToken cancellationToken)
    {
        if (!Enabled)
        {
            return;
        }

        var o = options.Value;
        BreakerState? entered;
        IReadOnlyList<string> released;
        try
        {
            (entered, released) = await _breakers.ReportAsync(
                host, success, probe, new BreakerPolicy(o.FailureThreshold, o.FailureWindow, o.CoolDown), error, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUnavailable(logger, host, ex.Message);
            return;
        }

        if (entered is { } state)
        {
            Transitioned(host, state, error);
        }

        Release(host, released);
    }

    /// <summary>
    /// Records Hangfire job <paramref name="hangfireJobId"/> as a delivery to <paramref name="host"/> held until <paramref name="due"/>.
    /// Best effort: unrecorded, the delivery still runs when it comes due, only not at once when the breaker closes.
    /// </summary>
    public async Task HoldAsync(string host, string hangfireJobId, DateTimeOffset due, CancellationToken cancellationToken)
    {
        try
        {
            await _breakers.HoldAsync(host, hangfireJobId, due, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUnavailable(logger, host, ex.Message);
        }
    }

    /// <summary>The held delivery <paramref name="hangfireJobId"/> runs now: it is no longer held (it may be held again, as a new job). Best effort.</summary>
    public async Task UnholdAsync(string host, string hangfireJobId, CancellationToken cancellationToken)
    {
        try
        {
            await _breakers.UnholdAsync(host, hangfireJobId, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUnavailable(logger, host, ex.Message);
        }
    }

    /// <summary>An operator's close: the host gets deliveries again now, and its held deliveries are enqueued. False when it was closed.</summary>
    public async Task<(bool WasOpen, int Released)> CloseAsync(string host, CancellationToken cancellationToken)
    {
        var (wasOpen, released) = await _breakers.CloseAsync(host, cancellationToken).ConfigureAwait(false);
        if (wasOpen)
        {
            Transitioned(host, BreakerState.Closed, "closed by an operator");
        }

        return (wasOpen, Release(host, released));
    }

    /// <summary>The breaker of <paramref name="host"/> now (closed with zeros when it has no state).</summary>
    public Task<BreakerSnapshot> GetAsync(string host, CancellationToken cancellationToken) =>
        _breakers.GetAsync(host, HeldShown, cancellationToken);

    /// <summary>Hosts whose breaker is open or half-open, most recently changed first.</summary>
    public Task<IReadOnlyList<BreakerSnapshot>> NotClosedAsync(int limit, CancellationToken cancellationToken) =>
        _breakers.NotClosedAsync(limit, HeldShown, cancellationToken);

    /// <summary>Sets the gauges from Redis, at most once a second (called when <c>/metrics</c> is scraped); a Redis failure keeps the previous values.</summary>
    public async Task RefreshMetricsAsync(CancellationToken cancellationToken)
    {
        await _metricsGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var now = clock.GetUtcNow();
            if (now - _metricsAt < MetricsInterval)
            {
                return;
            }

            var open = await _breakers.NotClosedAsync(1000, 1, cancellationToken).WaitAsync(TimeSpan.FromSeconds(3), cancellationToken).ConfigureAwait(false);
            foreach (var host in _reported.Keys.Except(open.Select(b => b.Name), StringComparer.Ordinal))
            {
                State.WithLabels(host).Set((int)BreakerState.Closed);
                Held.WithLabels(host).Set(0);
            }

            foreach (var breaker in open)
            {
                _reported.TryAdd(breaker.Name, 0);
                State.WithLabels(breaker.Name).Set((int)breaker.State);
                Held.WithLabels(breaker.Name).Set(breaker.HeldCount);
            }

            _metricsAt = now;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogMetricsFailed(logger, ex.Message);
        }
        finally
        {
            _metricsGate.Release();
        }
    }

    private void Transitioned(string host, BreakerState entered, string? reason)
    {
        var to = entered switch { BreakerState.Open => "open", BreakerState.HalfOpen => "half_open", _ => "closed" };
        Transitions.WithLabels(host, to).Inc();
        _reported.TryAdd(host, 0);
        State.WithLabels(host).Set((int)entered);
        if (entered == BreakerState.Open)
        {
            LogOpened(logger, host, options.Value.CoolDown, reason ?? string.Empty);
        }
        else
        {
            LogTransition(logger, host, to);
        }
    }

    /// <summary>Enqueues the held deliveries now (each only while it is still scheduled: one that started meanwhile is left alone).</summary>
    private int Release(string host, IReadOnlyList<string> hangfireJobIds)
    {
        var released = 0;
        foreach (var id in hangfireJobIds)
        {
            if (jobs.ChangeState(id, new EnqueuedState { Reason = $"Released: the circuit breaker of {host} closed" }, ScheduledState.StateName))
            {
                released++;
            }
        }

        if (hangfireJobIds.Count > 0)
        {
            LogReleased(logger, host, released);
        }

        return released;
    }

    [LoggerMessage(EventId = 740, Level = LogLevel.Warning, Message = "Webhook host {Host}: circuit breaker open for {CoolDown}; deliveries there are held. Last failure: {Reason}")]
    private static partial void LogOpened(ILogger logger, string host, TimeSpan coolDown, string reason);

    [LoggerMessage(EventId = 741, Level = LogLevel.Information, Message = "Webhook host {Host}: circuit breaker {State}")]
    private static partial void LogTransition(ILogger logger, string host, string state);

    [LoggerMessage(EventId = 742, Level = LogLevel.Information, Message = "Webhook host {Host}: {Released} held deliveries released")]
    private static partial void LogReleased(ILogger logger, string host, int released);

    [LoggerMessage(EventId = 744, Level = LogLevel.Warning, Message = "Webhook host {Host}: circuit breaker not read or updated (the delivery goes as if closed): {Reason}")]
    private static partial void LogUnavailable(ILogger logger, string host, string reason);

    [LoggerMessage(EventId = 743, Level = LogLevel.Warning, Message = "Webhook breaker gauges not refreshed (previous values served): {Reason}")]
    private static partial void LogMetricsFailed(ILogger logger, string reason);
}
