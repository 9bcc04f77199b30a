using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Async.Serving.Jobs;

/// <summary>
/// Moves a job store written before the shards (keys <c>job:{id}</c>, <c>input:{id}</c>,
/// <c>result:{id}</c>, the global <c>ledger</c> and <c>job-events</c> streams and the
/// <c>queued-by-expiry</c> and <c>running-jobs</c> indexes) to the sharded layout, keeping TTLs,
/// so an upgrade loses no job. Runs once per Redis (a marker key says it is done), on a single
/// server only: a cluster was never supported by the old layout. Idempotent, so API instances
/// starting together may both run it. Upgrade API and workers together: a worker of the old
/// version would go on writing the old keys.
/// </summary>
public sealed partial class JobStoreLayoutMigration(IConnectionMultiplexer redis, ILogger<JobStoreLayoutMigration> logger) : IHostedService
{
    public static readonly RedisKey Marker = "job-store-layout";

    public const string Layout = "sharded-1";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            var moved = await MigrateAsync(cancellationToken).ConfigureAwait(false);
            if (moved > 0)
            {
                LogMigrated(logger, moved);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Redis is not there yet: the next start tries again; jobs of the old layout wait.
            LogNotMigrated(logger, ex.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Returns the keys and entries moved (0 when there was nothing, or it was done before).</summary>
    public async Task<int> MigrateAsync(CancellationToken cancellationToken)
    {
        var db = redis.GetDatabase();
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        if (server.ServerType == ServerType.Cluster || await db.StringGetAsync(Marker).ConfigureAwait(false) == Layout)
        {
            return 0;
        }

        var moved = 0;
        foreach (var (prefix, key) in new (string, Func<string, RedisKey>)[] { ("job:", RedisJobStore.JobKey), ("input:", RedisJobStore.InputKey), ("result:", RedisJobStore.ResultKey) })
        {
            await foreach (var old in server.KeysAsync(db.Database, prefix + "*", pageSize: 1000).WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                // RENAME keeps the TTL; NX: a key already moved by another instance wins.
                if (await db.KeyRenameAsync(old, key(old.ToString()[prefix.Length..]), When.NotExists).ConfigureAwait(false))
                {
                    moved++;
                }
            }
        }

        foreach (var (old, index) in new (RedisKey, Func<string, RedisKey>)[] { ("queued-by-expiry", RedisJobStore.QueuedByExpiry), ("running-jobs", RedisJobStore.RunningJobs) })
        {
            foreach (var entry in await db.SortedSetRangeByRankWithScoresAsync(old).ConfigureAwait(false))
            {
                await db.SortedSetAddAsync(index(RedisJobStore.ShardOf(entry.Element.ToString())), entry.Element, entry.Score).ConfigureAwait(false);
                moved++;
            }

            await db.KeyDeleteAsync(old).ConfigureAwait(false);
        }

        foreach (var (old, stream) in new (RedisKey, Func<string, RedisKey>)[] { ("ledger", RedisJobStore.LedgerStream), ("job-events", RedisJobStore.EventStream) })
        {
            if (await db.KeyTypeAsync(old).ConfigureAwait(false) != RedisType.Stream)
            {
                continue;
            }

            foreach (var entry in await db.StreamRangeAsync(old).ConfigureAwait(false))
            {
                await db.StreamAddAsync(stream(RedisJobStore.ShardOf(entry["id"].ToString())), entry.Values,
                    maxLength: RedisJobStore.StreamMaxLength, useApproximateMaxLength: true).ConfigureAwait(false);
                moved++;
            }

            await db.KeyDeleteAsync(old).ConfigureAwait(false);
        }

        await db.StringSetAsync(Marker, Layout).ConfigureAwait(false);
        return moved;
    }

    [LoggerMessage(EventId = 150, Level = LogLevel.Information, Message = "Job store moved to the sharded layout: {Moved} keys and entries")]
    private static partial void LogMigrated(ILogger logger, int moved);

    [LoggerMessage(EventId = 151, Level = LogLevel.Warning, Message = "Job store layout not checked (Redis unavailable): {Reason}")]
    private static partial void LogNotMigrated(ILogger logger, string reason);
}
