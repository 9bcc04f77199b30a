using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Ledger;

/// <summary>
/// Copies job state changes from the Redis ledger stream into PostgreSQL in batches, off the submit
/// path. A batch is acknowledged only after its transaction committed; while PostgreSQL is down the
/// entries wait in the stream and the writer retries with a growing pause, so jobs keep running and
/// the ledger catches up.
/// </summary>
internal sealed partial class LedgerWriter(
    ILedgerSource source, ILedgerSink sink, IOptions<LedgerOptions> options, ILogger<LedgerWriter> logger) : BackgroundService
{
    private static readonly Prometheus.Counter Written = Prometheus.Metrics.CreateCounter(
        "serving_ledger_entries_written_total", "Ledger stream entries written to PostgreSQL and acknowledged.");

    private static readonly Prometheus.Gauge FailuresInRow = Prometheus.Metrics.CreateGauge(
        "serving_ledger_write_failures", "Consecutive failed ledger batches (0 when the writer is healthy).");

    private int _failures;

    /// <summary>Consecutive failed batches; 0 after a success.</summary>
    public int Failures => _failures;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            TimeSpan pause;
            try
            {
                var written = await PumpAsync(stoppingToken).ConfigureAwait(false);
                pause = written < options.Value.BatchSize ? options.Value.PollInterval : TimeSpan.Zero;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                pause = Backoff(_failures, options.Value.PollInterval, options.Value.MaxBackoff);
                LogWriteFailed(logger, _failures, pause.TotalSeconds, ex.Message);
            }

            if (pause > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(pause, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>Reads one batch, writes it, acknowledges it. Returns the entries handled; throws when the write failed (nothing acknowledged).</summary>
    public async Task<int> PumpAsync(CancellationToken cancellationToken)
    {
        LedgerBatch batch;
        try
        {
            batch = await source.ReadAsync(options.Value.BatchSize, cancellationToken).ConfigureAwait(false);
            if (batch.EntryIds.Count == 0)
            {
                _failures = 0;
                return 0;
            }

            // Not cancelled by shutdown: a batch once read is written and acknowledged, so that no
            // entry is left pending for another writer to claim later.
            try
            {
                await sink.WriteAsync(batch, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (!sink.IsTransient(ex))
            {
                // The database refused this data: find the job it is about, so that one bad entry
                // does not hold back every change behind it.
                await WriteJobByJobAsync(batch).ConfigureAwait(false);
            }

            await source.AckAsync(batch, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            FailuresInRow.Set(++_failures);
            throw;
        }

        _failures = 0;
        FailuresInRow.Set(0);
        Written.Inc(batch.EntryIds.Count);
        return batch.EntryIds.Count;
    }

    private async Task WriteJobByJobAsync(LedgerBatch batch)
    {
        foreach (var (jobId, part) in batch.PerJob())
        {
            try
            {
                await sink.WriteAsync(part, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (!sink.IsTransient(ex))
            {
                // Dropped from the stream; the reconcile maintenance job rewrites the row from Redis later if it can.
                LogRefused(logger, jobId, ex.Message);
            }
        }
    }

    /// <summary><paramref name="first"/> doubled per consecutive failure, at most <paramref name="max"/>.</summary>
    public static TimeSpan Backoff(int failures, TimeSpan first, TimeSpan max)
    {
        var factor = Math.Pow(2, Math.Clamp(failures - 1, 0, 30));
        return TimeSpan.FromTicks((long)Math.Min(max.Ticks, first.Ticks * factor));
    }

    [LoggerMessage(EventId = 760, Level = LogLevel.Warning, Message = "Ledger batch not written ({Failures} in a row), retrying in {Seconds:F1} s: {Reason}")]
    private static partial void LogWriteFailed(ILogger logger, int failures, double seconds, string reason);

    [LoggerMessage(EventId = 761, Level = LogLevel.Error, Message = "Ledger changes of job {JobId} refused by the database and skipped: {Reason}")]
    private static partial void LogRefused(ILogger logger, string jobId, string reason);
}
