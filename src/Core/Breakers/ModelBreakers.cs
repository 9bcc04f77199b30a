using Async.Serving.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Breakers;

/// <summary>Whether a model version takes jobs now; <see cref="RetryAt"/> is when an unavailable one is tried again.</summary>
public readonly record struct ModelAvailability(bool Available, BreakerState State, DateTimeOffset? RetryAt)
{
    /// <summary>Available, breaker closed: the answer when the breaker is off, unread, or not needed.</summary>
    public static ModelAvailability Closed { get; } = new(true, BreakerState.Closed, null);
}

/// <summary>
/// The circuit breaker of each model version (<c>name@version</c>), in Redis (<see cref="RedisCircuitBreaker"/>,
/// family <c>model</c>), shared by every worker and read by the API. Workers report each batch:
/// a batch the model failed on every item of (an ONNX Runtime error from <c>Run</c>, out of memory,
/// a broken session: never a job's bad input, which fails before it reaches the model) counts as a
/// failure, any other as a success. <see cref="ModelBreakerOptions.FailureThreshold"/> failed batches
/// in a row make the version unavailable for <see cref="ModelBreakerOptions.CoolDown"/>: workers fail
/// its jobs at once with <c>model_unavailable</c> and the API refuses submits for it with 503. After
/// the cool-down the next job is the probe: its batch succeeding closes the breaker, failing opens it again.
/// </summary>
public sealed partial class ModelBreakers(
    IConnectionMultiplexer redis,
    IOptions<ModelBreakerOptions> options,
    TimeProvider clock,
    ILogger<ModelBreakers> logger) : IModelAvailability
{
    public const string Family = "model";

    private static readonly TimeSpan MetricsInterval = TimeSpan.FromSeconds(1);

    /// <summary>A success is reported at most this often per model while nothing failed (a healthy model costs Redis little).</summary>
    private static readonly TimeSpan QuietSuccessInterval = TimeSpan.FromSeconds(1);

    private static readonly Prometheus.Gauge State = Prometheus.Metrics.CreateGauge(
        "serving_model_breaker_state",
        "Circuit breaker of a model version: 0 closed, 1 half-open (one job probes it), 2 open (unavailable: jobs fail with model_unavailable, submits get 503). "
        + "Read from Redis at scrape on the API (aggregate with max); a worker reports the changes it made.",
        new Prometheus.GaugeConfiguration { LabelNames = ["model"] });

    private static readonly Prometheus.Counter Transitions = Prometheus.Metrics.CreateCounter(
        "serving_model_breaker_transitions_total",
        "Changes of a model version's circuit breaker made by this process, by the state entered: open, half_open, closed. Sum over processes.",
        new Prometheus.CounterConfiguration { LabelNames = ["model", "to"] });

    private readonly RedisCircuitBreaker _breakers = new(redis, Family, clock);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, ModelHealth> _local = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _metricsGate = new(1, 1);
    private DateTimeOffset _metricsAt = DateTimeOffset.MinValue;

    public bool Enabled => options.Value.Enabled;

    /// <summary>
    /// True while <paramref name="modelId"/> (<c>name@version</c>) is marked unavailable (open, cool-down
    /// not over). For the intake and the routing between versions: a half-open version is available
    /// (the next job probes it). Redis failing reads as available: the breaker never adds an outage.
    /// </summary>
    public async Task<bool> IsOpenAsync(string modelId, CancellationToken cancellationToken) =>
        !(await CheckAsync(modelId, cancellationToken).ConfigureAwait(false)).Available;

    /// <summary>
    /// As <see cref="IsOpenAsync"/>, with the state and, when unavailable, when the version is tried again (for Retry-After).
    /// For routing between versions (<see cref="IModelAvailability"/>: a version whose breaker is open is skipped) and the intake.
    /// </summary>
    public async Task<ModelAvailability> CheckAsync(string modelId, CancellationToken cancellationToken)
    {
        if (!Enabled)
        {
            return ModelAvailability.Closed;
        }

        try
        {
            var (state, openUntil) = await _breakers.GetStateAsync(modelId, cancellationToken).ConfigureAwait(false);
            var open = state == BreakerState.Open && openUntil > clock.GetUtcNow();
            return new ModelAvailability(!open, state, open ? openUntil : null);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUnavailable(logger, modelId, ex.Message);
            return ModelAvailability.Closed;
        }
    }

    /// <summary>
    /// Sends the reads of the breakers of <paramref name="modelIds"/> now, to be looked at later
    /// (<see cref="BreakerReads.AllClosedAsync"/>): a worker sends them with a job's start script and
    /// looks once the start has answered, when their answers are already in, so the job waits once
    /// for both and no thread is woken for the reads. Closed everywhere: <see cref="AcquireAsync"/> would
    /// allow each without changing anything; otherwise the caller goes to <see cref="AcquireAsync"/>.
    /// </summary>
    public BreakerReads ReadAhead(IReadOnlyList<string> modelIds)
    {
        ArgumentNullException.ThrowIfNull(modelIds);
        if (!Enabled)
        {
            return BreakerReads.Closed;
        }

        var reads = new Task<RedisValue>[modelIds.Count];
        for (var i = 0; i < reads.Length; i++)
        {
            try
            {
                reads[i] = _breakers.ReadStateAsync(modelIds[i]);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                reads[i] = Task.FromException<RedisValue>(ex); // looked at as not closed: the acquire path decides
            }
        }

        return new BreakerReads(reads);
    }

    /// <summary>
    /// For a worker about to run a job of <paramref name="modelId"/>: may it run (closed), run as the
    /// probe (half-open), or must it fail at once (open, or another job probes)?
    /// </summary>
    public async Task<BreakerPermit> AcquireAsync(string modelId, CancellationToken cancellationToken)
    {
        if (!Enabled)
        {
            return BreakerPermit.Allowed;
        }

        try
        {
            var permit = await _breakers.AcquireAsync(modelId, options.Value.ProbeLease, cancellationToken).ConfigureAwait(false);
            if (permit.EnteredState is { } entered)
            {
                Transitioned(modelId, entered, null);
            }

            if (permit.Decision == BreakerDecision.Probe)
            {
                // The probe's batch is reported whatever this process reported last.
                var health = _local.GetOrAdd(modelId, _ => new ModelHealth());
                lock (health)
                {
                    health.Clean = false;
                }
            }

            return permit;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUnavailable(logger, modelId, ex.Message);
            return BreakerPermit.Allowed;
        }
    }

    /// <summary>
    /// Reports one batch of <paramref name="modelId"/>: <paramref name="error"/> null when the model
    /// produced results, else why it failed every item. Runs in the background (the batch loop does not
    /// wait on Redis); successes while nothing failed are sent at most once a second.
    /// </summary>
    public void ReportBatch(string modelId, string? error)
    {
        if (!Enabled)
        {
            return;
        }

        var health = _local.GetOrAdd(modelId, _ => new ModelHealth());
        var now = clock.GetUtcNow();
        lock (health)
        {
            if (error is null)
            {
                if (health.Clean && now - health.ReportedAt < QuietSuccessInterval)
                {
                    return;
                }

                health.Clean = true;
            }
            else
            {
                health.Clean = false;
            }

            health.ReportedAt = now;
        }

        _ = ReportAsync(modelId, error);
    }

    /// <summary>An operator's close: the version takes jobs again now. False when it was closed.</summary>
    public async Task<bool> CloseAsync(string modelId, CancellationToken cancellationToken)
    {
        var (wasOpen, _) = await _breakers.CloseAsync(modelId, cancellationToken).ConfigureAwait(false);
        if (wasOpen)
        {
            Transitioned(modelId, BreakerState.Closed, null);
        }

        return wasOpen;
    }

    /// <summary>The breaker of <paramref name="modelId"/> now (closed with zeros when it has no state).</summary>
    public Task<BreakerSnapshot> GetAsync(string modelId, CancellationToken cancellationToken) => _breakers.GetAsync(modelId, 1, cancellationToken);

    /// <summary>Model versions whose breaker is open or half-open, most recently changed first.</summary>
    public Task<IReadOnlyList<BreakerSnapshot>> NotClosedAsync(int limit, CancellationToken cancellationToken) =>
        _breakers.NotClosedAsync(limit, 1, cancellationToken);

    /// <summary>Sets <c>serving_model_breaker_state</c> for each of <paramref name="modelIds"/> from Redis, at most once a second (at scrape).</summary>
    public async Task RefreshMetricsAsync(IEnumerable<string> modelIds, CancellationToken cancellationToken)
    {
        await _metricsGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var now = clock.GetUtcNow();
            if (now - _metricsAt < MetricsInterval)
            {
                return;
            }

            var open = (await _breakers.NotClosedAsync(1000, 1, cancellationToken).WaitAsync(TimeSpan.FromSeconds(3), cancellationToken).ConfigureAwait(false))
                .ToDictionary(b => b.Name, b => b.State, StringComparer.Ordinal);
            foreach (var model in modelIds)
            {
                State.WithLabels(model).Set((int)open.GetValueOrDefault(model, BreakerState.Closed));
            }

            _metricsAt = now;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUnavailable(logger, "(all)", ex.Message);
        }
        finally
        {
            _metricsGate.Release();
        }
    }

    private async Task ReportAsync(string modelId, string? error)
    {
        try
        {
            var o = options.Value;
            var (entered, _) = await _breakers.ReportAsync(modelId, error is null, probe: true,
                new BreakerPolicy(o.FailureThreshold, o.FailureWindow, o.CoolDown), error, CancellationToken.None).ConfigureAwait(false);
            if (entered is { } state)
            {
                Transitioned(modelId, state, error);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUnavailable(logger, modelId, ex.Message);
        }
    }

    private void Transitioned(string modelId, BreakerState entered, string? reason)
    {
        var to = entered switch { BreakerState.Open => "open", BreakerState.HalfOpen => "half_open", _ => "closed" };
        Transitions.WithLabels(modelId, to).Inc();
        State.WithLabels(modelId).Set((int)entered);
        if (entered == BreakerState.Open)
        {
            LogOpened(logger, modelId, options.Value.CoolDown, reason ?? string.Empty);
        }
        else
        {
            LogTransition(logger, modelId, to);
        }
    }

    /// <summary>What this process last told Redis of a model: a clean success is not repeated within <see cref="QuietSuccessInterval"/>.</summary>
    private sealed class ModelHealth
    {
        public bool Clean { get; set; }

        public DateTimeOffset ReportedAt { get; set; } = DateTimeOffset.MinValue;
    }

    [LoggerMessage(EventId = 160, Level = LogLevel.Error, Message = "Model {Model} marked unavailable for {CoolDown}: its batches keep failing. Last failure: {Reason}")]
    private static partial void LogOpened(ILogger logger, string model, TimeSpan coolDown, string reason);

    [LoggerMessage(EventId = 161, Level = LogLevel.Information, Message = "Model {Model}: circuit breaker {State}")]
    private static partial void LogTransition(ILogger logger, string model, string state);

    [LoggerMessage(EventId = 162, Level = LogLevel.Warning, Message = "Model breaker of {Model} not read or updated (taken as available): {Reason}")]
    private static partial void LogUnavailable(ILogger logger, string model, string reason);
}

/// <summary>Breaker states read ahead by <see cref="ModelBreakers.ReadAhead"/>.</summary>
public sealed class BreakerReads
{
    internal static readonly BreakerReads Closed = new([]);

    private readonly Task<RedisValue>[] _reads;

    internal BreakerReads(Task<RedisValue>[] reads) => _reads = reads;

    /// <summary>Whether every breaker read is closed; false when one is not, or when Redis failed (the caller then asks <see cref="ModelBreakers.AcquireAsync"/>).</summary>
    public async ValueTask<bool> AllClosedAsync()
    {
        try
        {
            foreach (var read in _reads)
            {
                if (!RedisCircuitBreaker.IsClosed(await read.ConfigureAwait(false)))
                {
                    return false;
                }
            }

            return true;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return false;
        }
    }

    /// <summary>For reads that will not be looked at (the job did not start): a failed one is observed here rather than left to the finalizer.</summary>
    public void Abandon()
    {
        foreach (var read in _reads)
        {
            _ = read.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }
}
