using System.Globalization;
using Async.Serving.Jobs;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Api.DeadLetters;

/// <summary>
/// The dead-lettered jobs' messages, in Redis next to the jobs: <c>dead-letter:{id}</c> hashes that
/// live as long as a job does, and the <c>dead-letters</c> index by time for the dashboard.
/// </summary>
public sealed class DeadLetterStore(IConnectionMultiplexer redis, IOptions<JobStoreOptions> options)
{
    public static readonly RedisKey Index = "dead-letters";

    private readonly IDatabase _db = redis.GetDatabase();

    private static RedisKey Key(string jobId) => "dead-letter:" + jobId;

    public async Task SaveAsync(DeadLetterRecord record)
    {
        var o = options.Value;
        var batch = _db.CreateBatch();
        var writes = new[]
        {
            batch.HashSetAsync(Key(record.JobId),
            [
                new("queue", record.Queue),
                new("reason", record.Reason),
                new("at", record.At.ToUnixTimeMilliseconds()),
                new("message", record.MessageJson ?? string.Empty),
            ]),
            batch.KeyExpireAsync(Key(record.JobId), o.InputRetention + o.StatusRetention),
            batch.SortedSetAddAsync(Index, record.JobId, record.At.ToUnixTimeMilliseconds()),
        };
        batch.Execute();
        await Task.WhenAll(writes).ConfigureAwait(false);
    }

    public async Task<DeadLetterRecord?> GetAsync(string jobId)
    {
        var fields = await _db.HashGetAllAsync(Key(jobId)).ConfigureAwait(false);
        if (fields.Length == 0)
        {
            return null;
        }

        var map = fields.ToDictionary(f => f.Name.ToString(), f => f.Value);
        return new DeadLetterRecord(
            jobId,
            map.GetValueOrDefault("queue").ToString(),
            map.GetValueOrDefault("reason").ToString(),
            DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(map.GetValueOrDefault("at", 0).ToString(), CultureInfo.InvariantCulture)),
            map.GetValueOrDefault("message") is { IsNullOrEmpty: false } m ? m.ToString() : null);
    }

    /// <summary>The most recent records, newest first; index entries whose record expired are dropped on the way.</summary>
    public async Task<IReadOnlyList<DeadLetterRecord>> RecentAsync(int limit)
    {
        var ids = await _db.SortedSetRangeByRankAsync(Index, 0, limit - 1, Order.Descending).ConfigureAwait(false);
        var records = await Task.WhenAll(ids.Select(id => GetAsync(id.ToString()))).ConfigureAwait(false);
        var gone = ids.Where((_, i) => records[i] is null).ToArray();
        if (gone.Length > 0)
        {
            await _db.SortedSetRemoveAsync(Index, gone).ConfigureAwait(false);
        }

        return [.. records.OfType<DeadLetterRecord>()];
    }

    public async Task RemoveAsync(string jobId)
    {
        await _db.KeyDeleteAsync(Key(jobId)).ConfigureAwait(false);
        await _db.SortedSetRemoveAsync(Index, jobId).ConfigureAwait(false);
    }
}
