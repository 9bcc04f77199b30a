using Async.Serving.Jobs;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Api.Ledger;

/// <summary>
/// Reads the shards' <see cref="RedisJobStore.LedgerStream"/>s in the consumer group <c>ledger-writers</c>.
/// Entries stay pending until acknowledged, so a batch that PostgreSQL refused is read again; one
/// left pending by a writer that stopped is claimed after <see cref="LedgerOptions.ClaimIdle"/>.
/// </summary>
internal sealed class RedisLedgerSource(IConnectionMultiplexer redis, RedisJobStore store, IOptions<LedgerOptions> options, TimeProvider clock) : ILedgerSource
{
    public const string Group = "ledger-writers";

    private readonly RedisStreamGroup _group = new(
        redis.GetDatabase(), [.. RedisJobStore.Shards.Select(RedisJobStore.LedgerStream)], Group, options.Value.ClaimIdle, clock);

    public async Task<LedgerBatch> ReadAsync(int count, CancellationToken cancellationToken)
    {
        var entries = await _group.ReadAsync(count).ConfigureAwait(false);
        if (entries.Count == 0)
        {
            return LedgerBatch.Empty;
        }

        var ids = new List<string>(entries.Count);
        var events = new List<LedgerEvent>(entries.Count);
        var deleted = new List<string>();
        foreach (var (stream, entry) in entries)
        {
            ids.Add($"{stream}{Separator}{entry.Id}");
            // A pending entry trimmed from the stream (MAXLEN) comes back without values: acknowledge it, nothing to write.
            if (entry.IsNull || entry.Values is null || entry.Values.Length == 0)
            {
                continue;
            }

            var jobId = entry["id"];
            var status = entry["status"];
            var at = entry["at"];
            if (jobId.IsNullOrEmpty || status.IsNullOrEmpty || !at.TryParse(out long atMs))
            {
                continue;
            }

            if (status == "deleted")
            {
                deleted.Add(jobId.ToString());
            }
            else
            {
                events.Add(new LedgerEvent(jobId.ToString(), status.ToString(), DateTimeOffset.FromUnixTimeMilliseconds(atMs)));
            }
        }

        // The row is written from the job's current state, so entries read out of order (or twice) converge.
        var jobIds = events.Select(e => e.JobId).Distinct(StringComparer.Ordinal).Except(deleted, StringComparer.Ordinal).ToList();
        var jobs = await Task.WhenAll(jobIds.Select(id => store.GetAsync(id, includeOutput: false))).ConfigureAwait(false);
        return new LedgerBatch(ids, events, [.. jobs.OfType<JobRecord>()], deleted);
    }

    public Task AckAsync(LedgerBatch batch, CancellationToken cancellationToken) =>
        _group.AckAsync(batch.EntryIds.Select(id => id.Split(Separator)).Select(p => new StreamEntryRef(p[0], new StreamEntry(p[1], []))));

    // Between a batch's entry's stream and its id, in LedgerBatch.EntryIds.
    private const char Separator = '|';
}
