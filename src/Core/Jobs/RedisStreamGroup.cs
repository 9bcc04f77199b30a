using StackExchange.Redis;

namespace Async.Serving.Jobs;

/// <summary>
/// One consumer of a Redis stream's consumer group, for readers that must see every entry at least
/// once (the ledger writer, the webhook relay). An entry stays pending until it is acknowledged, so
/// one whose handling failed is read again by the same consumer first; one left pending by a
/// consumer that stopped is claimed after <paramref name="claimIdle"/>; then come new entries.
/// Acknowledged entries are deleted: the stream holds only what is still to be handled.
/// </summary>
public sealed class RedisStreamGroup(IDatabase db, RedisKey stream, string group, TimeSpan claimIdle)
{
    private readonly string _consumer = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
    private bool _groupReady;

    public RedisKey Stream => stream;

    /// <summary>Up to <paramref name="count"/> entries. A pending entry trimmed from the stream comes back with no values.</summary>
    public async Task<StreamEntry[]> ReadAsync(int count)
    {
        try
        {
            await EnsureGroupAsync().ConfigureAwait(false);
            var entries = await db.StreamReadGroupAsync(stream, group, _consumer, "0", count).ConfigureAwait(false);
            if (entries.Length == 0)
            {
                var claimed = await db.StreamAutoClaimAsync(stream, group, _consumer, (long)claimIdle.TotalMilliseconds, "0-0", count).ConfigureAwait(false);
                entries = claimed.ClaimedEntries;
            }

            if (entries.Length == 0)
            {
                entries = await db.StreamReadGroupAsync(stream, group, _consumer, StreamPosition.NewMessages, count).ConfigureAwait(false);
            }

            return entries;
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOGROUP", StringComparison.Ordinal))
        {
            _groupReady = false; // the stream was deleted (or Redis lost it): create the group again next time
            throw;
        }
    }

    /// <summary>Acknowledges and deletes handled entries.</summary>
    public async Task AckAsync(IReadOnlyCollection<RedisValue> ids)
    {
        if (ids.Count == 0)
        {
            return;
        }

        RedisValue[] values = [.. ids];
        await db.StreamAcknowledgeAsync(stream, group, values).ConfigureAwait(false);
        await db.StreamDeleteAsync(stream, values).ConfigureAwait(false);
    }

    private async Task EnsureGroupAsync()
    {
        if (_groupReady)
        {
            return;
        }

        try
        {
            // From the start of the stream: entries written before any reader ran are not lost.
            await db.StreamCreateConsumerGroupAsync(stream, group, "0", createStream: true).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
        }

        _groupReady = true;
    }
}
