using StackExchange.Redis;

namespace Async.Serving.Jobs;

/// <summary>An entry and the stream it came from (entry ids are unique per stream only).</summary>
public readonly record struct StreamEntryRef(RedisKey Stream, StreamEntry Entry);

/// <summary>
/// One consumer of a consumer group over a set of streams (a stream per job-store shard), for
/// readers that must see every entry at least once: the ledger writer and the webhook relay. An
/// entry stays pending until it is acknowledged, so one whose handling failed is read again by the
/// same consumer first; one left pending by a consumer that stopped is claimed after
/// <paramref name="claimIdle"/>; then come new entries, from every stream in turn. Acknowledged
/// entries are deleted: the streams hold only what is still to be handled; consumers of processes
/// that stopped are deleted once idle ten times <paramref name="claimIdle"/> with nothing pending. Each command names one
/// stream, so this works on a Redis Cluster, where the streams live in different slots.
/// </summary>
public sealed class RedisStreamGroup(IDatabase db, IReadOnlyList<RedisKey> streams, string group, TimeSpan claimIdle, TimeProvider clock)
{
    private readonly string _consumer = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
    private readonly HashSet<RedisKey> _groupReady = [];
    // Streams where this consumer read entries it has not acknowledged: read from "0" first there.
    private readonly HashSet<RedisKey> _unacknowledged = [];
    private long _lastClaim = long.MinValue;
    private int _next;

    /// <summary>
    /// About <paramref name="count"/> entries (new ones are asked of every stream, a share each, so a
    /// read may return a few more). A pending entry trimmed from its stream comes back with no values.
    /// </summary>
    public async Task<IReadOnlyList<StreamEntryRef>> ReadAsync(int count)
    {
        var read = new List<StreamEntryRef>();
        foreach (var stream in _unacknowledged.ToArray())
        {
            var pending = await CommandAsync(stream, () => db.StreamReadGroupAsync(stream, group, _consumer, "0", count)).ConfigureAwait(false);
            if (pending.Length == 0)
            {
                _unacknowledged.Remove(stream);
            }

            read.AddRange(pending.Select(e => new StreamEntryRef(stream, e)));
            if (read.Count >= count)
            {
                return read;
            }
        }

        // Entries of consumers that stopped: looked for every half claim-idle period, not every read.
        var now = clock.GetTimestamp();
        if (_lastClaim == long.MinValue || clock.GetElapsedTime(_lastClaim, now) >= claimIdle / 2)
        {
            _lastClaim = now;
            foreach (var stream in streams)
            {
                var claimed = await CommandAsync(stream, async () =>
                    (await db.StreamAutoClaimAsync(stream, group, _consumer, (long)claimIdle.TotalMilliseconds, "0-0", count).ConfigureAwait(false)).ClaimedEntries).ConfigureAwait(false);
                Take(read, stream, claimed);
                await RemoveStoppedConsumersAsync(stream).ConfigureAwait(false);
                if (read.Count >= count)
                {
                    return read;
                }
            }
        }

        if (read.Count > 0)
        {
            return read;
        }

        // New entries: every stream at once (pipelined), a share of the count each, starting from a
        // different stream each time so that none always comes last.
        var share = Math.Max(1, (count + streams.Count - 1) / streams.Count);
        var start = _next++ % streams.Count;
        var order = streams.Skip(start).Concat(streams.Take(start)).ToArray();
        var fresh = await Task.WhenAll(order.Select(stream =>
            CommandAsync(stream, () => db.StreamReadGroupAsync(stream, group, _consumer, StreamPosition.NewMessages, share)))).ConfigureAwait(false);
        for (var i = 0; i < order.Length; i++)
        {
            Take(read, order[i], fresh[i]);
        }

        return read;
    }

    /// <summary>
    /// Each process names a consumer of its own, so every restart leaves one behind in each stream's
    /// group (about 280 B each, for good). A consumer idle ten claim periods that holds no entry (what
    /// it held was claimed above) has stopped, and is deleted. Should it be alive after all, its next
    /// read makes it again; having held nothing, it loses nothing.
    /// </summary>
    private async Task RemoveStoppedConsumersAsync(RedisKey stream)
    {
        var stoppedAfter = (long)(claimIdle * 10).TotalMilliseconds;
        try
        {
            foreach (var consumer in await db.StreamConsumerInfoAsync(stream, group).ConfigureAwait(false))
            {
                if (consumer.Name != _consumer && consumer.PendingMessageCount == 0 && consumer.IdleTimeInMilliseconds > stoppedAfter)
                {
                    await db.StreamDeleteConsumerAsync(stream, group, consumer.Name).ConfigureAwait(false);
                }
            }
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOGROUP", StringComparison.Ordinal))
        {
            // The stream went away since the claim: nothing to tidy.
        }
    }

    private void Take(List<StreamEntryRef> read, RedisKey stream, StreamEntry[] entries)
    {
        if (entries.Length > 0)
        {
            _unacknowledged.Add(stream); // pending until acknowledged
            read.AddRange(entries.Select(e => new StreamEntryRef(stream, e)));
        }
    }

    /// <summary>Acknowledges and deletes handled entries.</summary>
    public async Task AckAsync(IEnumerable<StreamEntryRef> entries)
    {
        foreach (var perStream in entries.GroupBy(e => e.Stream))
        {
            RedisValue[] ids = [.. perStream.Select(e => e.Entry.Id)];
            await db.StreamAcknowledgeAsync(perStream.Key, group, ids).ConfigureAwait(false);
            await db.StreamDeleteAsync(perStream.Key, ids).ConfigureAwait(false);
        }
    }

    private async Task<StreamEntry[]> CommandAsync(RedisKey stream, Func<Task<StreamEntry[]>> command)
    {
        try
        {
            await EnsureGroupAsync(stream).ConfigureAwait(false);
            return await command().ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOGROUP", StringComparison.Ordinal))
        {
            lock (_groupReady)
            {
                _groupReady.Remove(stream); // the stream was deleted (or Redis lost it): create the group again next time
            }

            throw;
        }
    }

    private async Task EnsureGroupAsync(RedisKey stream)
    {
        lock (_groupReady)
        {
            if (_groupReady.Contains(stream))
            {
                return;
            }
        }

        try
        {
            // From the start of the stream: entries written before any reader ran are not lost.
            await db.StreamCreateConsumerGroupAsync(stream, group, "0", createStream: true).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
        }

        lock (_groupReady)
        {
            _groupReady.Add(stream);
        }
    }
}
