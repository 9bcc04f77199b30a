using Async.Serving.Api.Ledger;
using Async.Serving.Blobs;
using Async.Serving.Jobs;
using Async.Serving.Models;
using Hangfire;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Api.Maintenance;

/// <summary>
/// The recurring maintenance jobs. Each is idempotent and safe to run on several API instances at
/// once: every state change goes through the job store's scripts, which only act on the state
/// they expect and write the change's event to the outbox in the same step. Failures are not retried by Hangfire: the next run (a minute later) starts over.
/// </summary>
public sealed partial class MaintenanceJobs(
    IConnectionMultiplexer redis,
    RedisJobStore store,
    WorkerRegistry workers,
    LedgerStore ledger,
    IBlobStore blobs,
    IOptions<BlobOptions> blobOptions,
    IOptions<MaintenanceOptions> options,
    TimeProvider clock,
    ILogger<MaintenanceJobs> logger)
{
    public const string WorkerLostCode = "worker_lost";

    /// <summary>When each worker that stopped beating was first seen missing (field: worker id, value: Unix ms).</summary>
    internal static readonly RedisKey MissingSince = "worker-missing-since";

    private readonly IDatabase _db = redis.GetDatabase();

    /// <summary>
    /// Expires queued jobs past their TTL, also those of models no worker serves (a worker expires a
    /// job only when it takes its message). Returns the jobs expired.
    /// </summary>
    [AutomaticRetry(Attempts = 0)]
    public async Task<int> ExpireQueuedAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var expired = 0;
        foreach (var (index, value) in await DueAsync(RedisJobStore.QueuedByExpiry, now.ToUnixTimeMilliseconds()).ConfigureAwait(false))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var id = value.ToString();
            var job = await store.GetAsync(id, includeOutput: false).ConfigureAwait(false);
            if (job is not null && await store.ExpireAsync(id).ConfigureAwait(false))
            {
                expired++;
            }
            else
            {
                // Gone, or no longer queued (the store's scripts remove it too; this covers old entries).
                await _db.SortedSetRemoveAsync(index, value).ConfigureAwait(false);
            }
        }

        if (expired > 0)
        {
            LogExpired(logger, expired);
        }

        return expired;
    }

    /// <summary>
    /// Fails running jobs whose worker stopped heart-beating more than the grace period ago and that
    /// used all their attempts (a redelivery would only fail them). Anything less certain is left for
    /// redelivery: a job with attempts left, one with no recorded worker, one whose worker is live.
    /// Returns the jobs failed.
    /// </summary>
    [AutomaticRetry(Attempts = 0)]
    public async Task<int> FailLostJobsAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var now = clock.GetUtcNow();
        // A job started within the grace period cannot have lost its worker for that long.
        var failed = 0;
        foreach (var (index, value) in await DueAsync(RedisJobStore.RunningJobs, (now - settings.WorkerLostGrace).ToUnixTimeMilliseconds()).ConfigureAwait(false))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var id = value.ToString();
            var job = await store.GetAsync(id, includeOutput: false).ConfigureAwait(false);
            if (job is null || job.Status != JobStatuses.Running)
            {
                await _db.SortedSetRemoveAsync(index, value).ConfigureAwait(false);
                continue;
            }

            if (job.WorkerId is not { Length: > 0 } worker || job.Attempts < settings.MaxAttempts)
            {
                continue;
            }

            var goneFor = await GoneForAsync(worker, job.Model, now).ConfigureAwait(false);
            if (goneFor is null || goneFor < settings.WorkerLostGrace)
            {
                continue;
            }

            var message = $"The worker running the job ({worker}) stopped for {goneFor.Value.TotalSeconds:F0} s after attempt {job.Attempts} of {settings.MaxAttempts}.";
            if (await store.FailLostAsync(id, worker, WorkerLostCode, message).ConfigureAwait(false))
            {
                failed++;
                LogWorkerLost(logger, id, worker);
            }
        }

        return failed;
    }

    /// <summary>
    /// Deletes ledger rows and events past their retention. Redis needs nothing here: job hashes,
    /// inputs, results, idempotency keys and tenant indexes all carry TTLs; the ledger stream is
    /// capped and emptied as it is written. (Blobs, which carry no TTL, have <see cref="SweepBlobsAsync"/>.)
    /// </summary>
    [AutomaticRetry(Attempts = 0)]
    public async Task<int> PurgeLedgerAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var deleted = await ledger.PurgeAsync(now - options.Value.LedgerRetention, now - options.Value.LedgerEventRetention, cancellationToken).ConfigureAwait(false);
        if (deleted > 0)
        {
            LogPurged(logger, deleted);
        }

        return deleted;
    }

    /// <summary>
    /// Rewrites, from the job store, ledger rows left queued or running for a minute or more: a change
    /// whose stream entry never arrived (a worker of an older version, an entry trimmed from a stream
    /// that grew past its cap while PostgreSQL was down) is caught up here. A row whose job is no
    /// longer in Redis at all (its record expired, or a Redis crash lost it) is ended <c>failed</c>
    /// with code <c>lost</c>: nothing will ever finish it. Returns the rows looked at.
    /// </summary>
    [AutomaticRetry(Attempts = 0)]
    public async Task<int> ReconcileLedgerAsync(CancellationToken cancellationToken)
    {
        var ids = await ledger.StaleAsync(clock.GetUtcNow() - TimeSpan.FromMinutes(1), options.Value.BatchSize, cancellationToken).ConfigureAwait(false);
        if (ids.Count == 0)
        {
            return 0;
        }

        var jobs = await Task.WhenAll(ids.Select(id => store.GetAsync(id, includeOutput: false))).ConfigureAwait(false);
        await ledger.WriteAsync(new LedgerBatch([], [], [.. jobs.OfType<JobRecord>()], []), cancellationToken).ConfigureAwait(false);
        var lost = ids.Where((_, i) => jobs[i] is null).ToList();
        if (await ledger.MarkLostAsync(lost, clock.GetUtcNow(), cancellationToken).ConfigureAwait(false) is var ended and > 0)
        {
            LogLost(logger, ended);
        }

        return ids.Count;
    }

    /// <summary>
    /// Deletes the blobs nothing references any more (docs/blobs.md), each older than
    /// <c>Serving:Blobs:OrphanAge</c>: a job's input once its job no longer references it (the job
    /// ended, was deleted, or its input expired: most are deleted at once by whoever ended the job,
    /// this catches the rest), a job's output once its result key expired, uploads staged by a submit
    /// that died before its job was stored, and writes abandoned half-way. A blob's name says whose it
    /// is, so the check is a pipelined read or two per blob. Returns the blobs deleted.
    /// </summary>
    [AutomaticRetry(Attempts = 0)]
    public async Task<int> SweepBlobsAsync(CancellationToken cancellationToken)
    {
        var age = blobOptions.Value.OrphanAge;
        var before = clock.GetUtcNow() - age;
        var budget = blobOptions.Value.SweepBatchSize;
        var deleted = await blobs.DeleteAbandonedWritesAsync(age, cancellationToken).ConfigureAwait(false);
        foreach (var (folder, referenced) in new (string, Func<string, Task<bool>>?)[]
        {
            (BlobNames.Uploads, null), (BlobNames.Inputs, store.ReferencesInputBlobAsync), (BlobNames.Outputs, id => _db.KeyExistsAsync(RedisJobStore.ResultKey(id))),
        })
        {
            var old = new List<BlobEntry>();
            await foreach (var blob in blobs.ListAsync(folder, cancellationToken).ConfigureAwait(false))
            {
                if (blob.LastModified < before)
                {
                    old.Add(blob);
                }

                if (old.Count >= budget)
                {
                    break;
                }
            }

            budget -= old.Count;
            foreach (var chunk in old.Chunk(500))
            {
                var checks = referenced is null
                    ? chunk.Select(_ => Task.FromResult(false)).ToArray()
                    : chunk.Select(b => referenced(b.Name[folder.Length..])).ToArray();
                for (var i = 0; i < chunk.Length; i++)
                {
                    if (!await checks[i].ConfigureAwait(false) && await blobs.DeleteAsync(chunk[i].Name, cancellationToken).ConfigureAwait(false))
                    {
                        deleted++;
                    }
                }
            }
        }

        if (deleted > 0)
        {
            LogBlobsSwept(logger, deleted);
        }

        return deleted;
    }

    /// <summary>The ids scored at most <paramref name="maxScore"/> in every shard's <paramref name="index"/>, at most a batch per shard, with the index each is in.</summary>
    private async Task<List<(RedisKey Index, RedisValue Id)>> DueAsync(Func<string, RedisKey> index, long maxScore)
    {
        var keys = RedisJobStore.Shards.Select(index).ToArray();
        var due = await Task.WhenAll(keys.Select(key =>
            _db.SortedSetRangeByScoreAsync(key, double.NegativeInfinity, maxScore, take: options.Value.BatchSize))).ConfigureAwait(false);
        return [.. keys.Zip(due).SelectMany(shard => shard.Second.Select(id => (shard.First, id)))];
    }

    /// <summary>How long the worker has been gone, or null while it is live.</summary>
    private async Task<TimeSpan?> GoneForAsync(string worker, string modelId, DateTimeOffset now)
    {
        var lastBeat = await workers.LastBeatAsync(worker, modelId).ConfigureAwait(false);
        if (lastBeat is { } beat && now - beat <= WorkerRegistry.LiveWindow)
        {
            await _db.HashDeleteAsync(MissingSince, worker).ConfigureAwait(false);
            return null;
        }

        if (lastBeat is { } last)
        {
            return now - (last + WorkerRegistry.LiveWindow);
        }

        // Its beats are pruned (or it never beat): count from when maintenance first missed it.
        await _db.HashSetAsync(MissingSince, worker, now.ToUnixTimeMilliseconds(), When.NotExists).ConfigureAwait(false);
        await _db.KeyExpireAsync(MissingSince, TimeSpan.FromDays(1)).ConfigureAwait(false);
        var since = (long)await _db.HashGetAsync(MissingSince, worker).ConfigureAwait(false);
        return now - DateTimeOffset.FromUnixTimeMilliseconds(since);
    }

    [LoggerMessage(EventId = 710, Level = LogLevel.Information, Message = "Maintenance expired {Count} queued jobs past their TTL")]
    private static partial void LogExpired(ILogger logger, int count);

    [LoggerMessage(EventId = 711, Level = LogLevel.Warning, Message = "Job {JobId} failed worker_lost: worker {Worker} stopped heart-beating")]
    private static partial void LogWorkerLost(ILogger logger, string jobId, string worker);

    [LoggerMessage(EventId = 712, Level = LogLevel.Information, Message = "Maintenance purged {Count} ledger rows past retention")]
    private static partial void LogPurged(ILogger logger, int count);

    [LoggerMessage(EventId = 715, Level = LogLevel.Information, Message = "Maintenance deleted {Count} blobs no job references")]
    private static partial void LogBlobsSwept(ILogger logger, int count);

    [LoggerMessage(EventId = 714, Level = LogLevel.Warning, Message = "Maintenance ended {Count} ledger rows failed lost: their jobs are no longer in Redis")]
    private static partial void LogLost(ILogger logger, int count);

}
