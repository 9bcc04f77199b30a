using Async.Serving.Jobs;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Api.Ledger;

/// <summary>
/// Reads <see cref="RedisJobStore.LedgerStream"/> in the consumer group <c>ledger-writers</c>.
/// Entries stay pending until acknowledged, so a batch that PostgreSQL refused is read again; one
/// left pending by a writer that stopped is claimed after <see cref="LedgerOptions.ClaimIdle"/>.
/// </summary>
internal sealed class RedisLedgerSource(IConnectionMultiplexer redis, RedisJobStore store, IOptions<LedgerOptions> options) : ILedgerSource
{
    public const string Group = "ledger-writers";

    private readonly IDatabase _db = redis.GetDatabase();
    private readonly string _consumer = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
    private bool _groupReady;

    public async Task<LedgerBatch> ReadAsync(int count, CancellationToken cancellationToken)
    {
        try
        {
            return await ReadCoreAsync(count).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOGROUP", StringComparison.Ordinal))
        {
            _groupReady = false; // the stream was deleted (or Redis flushed): create the group again next time
            throw;
        }
    }

    private async Task<LedgerBatch> ReadCoreAsync(int count)
    {
        await EnsureGroupAsync().ConfigureAwait(false);
        // Own entries read before but not acknowledged (a failed write) first, then stale ones of
        // stopped writers, then new ones.
        var entries = await _db.StreamReadGroupAsync(RedisJobStore.LedgerStream, Group, _consumer, "0", count).ConfigureAwait(false);
        if (entries.Length == 0)
        {
            var claimed = await _db.StreamAutoClaimAsync(
                RedisJobStore.LedgerStream, Group, _consumer, (long)options.Value.ClaimIdle.TotalMilliseconds, "0-0", count).ConfigureAwait(false);
            entries = claimed.ClaimedEntries;
        }

        if (entries.Length == 0)
        {
            entries = await _db.StreamReadGroupAsync(RedisJobStore.LedgerStream, Group, _consumer, StreamPosition.NewMessages, count).ConfigureAwait(false);
        }

        if (entries.Length == 0)
        {
            return LedgerBatch.Empty;
        }

        var ids = new List<string>(entries.Length);
        var events = new List<LedgerEvent>(entries.Length);
        var deleted = new List<string>();
        foreach (var entry in entries)
        {
            ids.Add(entry.Id.ToString());
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

    public async Task AckAsync(LedgerBatch batch, CancellationToken cancellationToken)
    {
        if (batch.EntryIds.Count == 0)
        {
            return;
        }

        RedisValue[] ids = [.. batch.EntryIds.Select(id => (RedisValue)id)];
        await _db.StreamAcknowledgeAsync(RedisJobStore.LedgerStream, Group, ids).ConfigureAwait(false);
        // Written entries are of no further use: the stream holds only what is not yet in PostgreSQL.
        await _db.StreamDeleteAsync(RedisJobStore.LedgerStream, ids).ConfigureAwait(false);
    }

    private async Task EnsureGroupAsync()
    {
        if (_groupReady)
        {
            return;
        }

        try
        {
            // From the start of the stream: changes made before any writer ever ran are not lost.
            await _db.StreamCreateConsumerGroupAsync(RedisJobStore.LedgerStream, Group, "0", createStream: true).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
        }

        _groupReady = true;
    }
}
