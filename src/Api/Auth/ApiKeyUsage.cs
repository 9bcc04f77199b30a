using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Auth;

/// <summary>
/// <c>last_used_at</c> of API keys, kept without a write per request: a key that authenticates is
/// noted in memory at most once per <see cref="ApiKeyOptions.LastUsedPrecision"/> (per API instance),
/// and the noted keys are written in one statement every <see cref="ApiKeyOptions.LastUsedFlushInterval"/>
/// in the background. A request only touches two dictionaries, so a slow or absent PostgreSQL never
/// fails or slows it; what could not be written is tried again at the next flush.
/// </summary>
internal sealed partial class ApiKeyUsage(ApiKeyStore store, IOptions<ApiKeyOptions> options, TimeProvider clock, ILogger<ApiKeyUsage> logger)
    : BackgroundService
{
    /// <summary>Longest a flush may wait for PostgreSQL; the keys stay noted and go with the next flush.</summary>
    public static readonly TimeSpan WriteTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Longest the last flush at shutdown may take.</summary>
    public static readonly TimeSpan ShutdownFlushTimeout = TimeSpan.FromSeconds(2);

    private static readonly Prometheus.Counter Writes = Prometheus.Metrics.CreateCounter(
        "serving_api_key_last_used_writes_total", "Flushes of API keys' last use to PostgreSQL, by outcome (written, error).",
        new Prometheus.CounterConfiguration { LabelNames = ["outcome"] });

    // When each key was last noted; entries older than the precision are pruned at each flush.
    private readonly ConcurrentDictionary<Guid, DateTimeOffset> _noted = new();

    // Noted and not yet written.
    private readonly ConcurrentDictionary<Guid, DateTimeOffset> _pending = new();

    /// <summary>Notes that <paramref name="keyId"/> authenticated now. Never blocks, never throws.</summary>
    public void Record(Guid keyId) => Record(keyId, clock.GetUtcNow());

    /// <summary>True when the use is to be written: the key was not noted within the precision before <paramref name="now"/>.</summary>
    internal bool Record(Guid keyId, DateTimeOffset now)
    {
        if (_noted.TryGetValue(keyId, out var last) && now - last < options.Value.LastUsedPrecision)
        {
            return false;
        }

        // Two requests of one key at the same instant may both get here: the later value wins, one write.
        _noted[keyId] = now;
        _pending[keyId] = now;
        return true;
    }

    /// <summary>Keys noted and not written yet.</summary>
    internal int PendingCount => _pending.Count;

    /// <summary>Writes the noted keys; on failure they stay noted for the next flush. Throws only when <paramref name="cancellationToken"/> is cancelled.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        var batch = new Dictionary<Guid, DateTimeOffset>();
        foreach (var (id, at) in _pending)
        {
            // Removed only if unchanged: a newer use noted meanwhile stays pending.
            if (_pending.TryRemove(new KeyValuePair<Guid, DateTimeOffset>(id, at)))
            {
                batch[id] = at;
            }
        }

        if (batch.Count > 0)
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(WriteTimeout);
            try
            {
                await store.RecordUseAsync(batch, options.Value.LastUsedPrecision, deadline.Token).ConfigureAwait(false);
                Writes.WithLabels("written").Inc();
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                foreach (var (id, at) in batch)
                {
                    _pending.AddOrUpdate(id, at, (_, newer) => newer > at ? newer : at);
                }

                Writes.WithLabels("error").Inc();
                LogWriteFailed(logger, batch.Count, ex.GetType().Name, ex.Message);
            }
        }

        var oldest = clock.GetUtcNow() - options.Value.LastUsedPrecision;
        foreach (var (id, at) in _noted)
        {
            if (at < oldest)
            {
                _noted.TryRemove(new KeyValuePair<Guid, DateTimeOffset>(id, at));
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.LastUsedFlushInterval, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                await FlushAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: StopAsync writes what is left.
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        // A short last try: an unreachable PostgreSQL must not hold up the shutdown.
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        budget.CancelAfter(ShutdownFlushTimeout);
        try
        {
            await FlushAsync(budget.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Out of time: the last uses noted since the previous flush are lost.
        }
    }

    [LoggerMessage(EventId = 405, Level = LogLevel.Warning, Message = "Last use of {Count} API keys not written ({ExceptionType}: {Reason}); tried again at the next flush")]
    private static partial void LogWriteFailed(ILogger logger, int count, string exceptionType, string reason);
}
