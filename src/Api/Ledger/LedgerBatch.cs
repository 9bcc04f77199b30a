using Async.Serving.Jobs;

namespace Async.Serving.Api.Ledger;

/// <summary>One state change of a job, as the job store appended it to the ledger stream.</summary>
public sealed record LedgerEvent(string JobId, string Status, DateTimeOffset At);

/// <summary>
/// Stream entries read together: their changes, the current state of each job they name (a job
/// whose hash has expired is absent), and the jobs removed because their publish failed.
/// </summary>
public sealed record LedgerBatch(
    IReadOnlyList<string> EntryIds,
    IReadOnlyList<LedgerEvent> Events,
    IReadOnlyList<JobRecord> Jobs,
    IReadOnlyList<string> Deleted)
{
    public static readonly LedgerBatch Empty = new([], [], [], []);

    /// <summary>The same changes split per job (no entry ids: the caller acknowledges the whole batch).</summary>
    public IEnumerable<(string JobId, LedgerBatch Part)> PerJob()
    {
        var jobs = Jobs.ToDictionary(j => j.Id, StringComparer.Ordinal);
        var ids = Events.Select(e => e.JobId).Concat(jobs.Keys).Distinct(StringComparer.Ordinal);
        foreach (var id in ids)
        {
            yield return (id, new LedgerBatch([], [.. Events.Where(e => e.JobId == id)], jobs.TryGetValue(id, out var job) ? [job] : [], []));
        }

        foreach (var id in Deleted)
        {
            yield return (id, new LedgerBatch([], [], [], [id]));
        }
    }
}

/// <summary>Where ledger entries come from: read (unacknowledged ones again until acknowledged), then acknowledge.</summary>
public interface ILedgerSource
{
    Task<LedgerBatch> ReadAsync(int count, CancellationToken cancellationToken);

    Task AckAsync(LedgerBatch batch, CancellationToken cancellationToken);
}

/// <summary>Where ledger batches go; a batch is written whole or not at all.</summary>
public interface ILedgerSink
{
    Task WriteAsync(LedgerBatch batch, CancellationToken cancellationToken);

    /// <summary>Whether a failure may pass by itself (database down, timeout), as opposed to this data being refused.</summary>
    bool IsTransient(Exception exception);
}
