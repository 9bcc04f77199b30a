using System.Globalization;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Jobs;

/// <summary>
/// Job state, inputs (claim check) and outputs in Redis. Every state change is one Lua script, so a
/// cancel racing a start, or a redelivered message racing its first delivery, cannot both win;
/// each change is announced on <c>job-changed:{id}</c> for waiters.
/// </summary>
public sealed class RedisJobStore(IConnectionMultiplexer redis, IOptions<JobStoreOptions> options, TimeProvider clock)
{
    // Every state change also appends to the ledger stream, in the same script, so the PostgreSQL
    // ledger (Api/Ledger) sees every change even while the API or PostgreSQL is down.
    private const string LedgerAppend = "local function ledger(id, status, at) redis.call('XADD', 'ledger', 'MAXLEN', '~', '1000000', '*', 'id', id, 'status', status, 'at', at) end\n";

    // KEYS: job, channel, input. ARGV: now, status retention seconds, worker id ('' for none).
    private const string StartScript = LedgerAppend + """
        local id = string.sub(KEYS[1], 5)
        local status = redis.call('HGET', KEYS[1], 'status')
        if not status then return 'missing' end
        if status ~= 'queued' and status ~= 'running' then return status end
        if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then
          redis.call('HSET', KEYS[1], 'status', 'cancelled', 'completed_at', ARGV[1])
          redis.call('EXPIRE', KEYS[1], ARGV[2])
          redis.call('DEL', KEYS[3])
          redis.call('PUBLISH', KEYS[2], 'cancelled')
          redis.call('ZREM', 'queued-by-expiry', id)
          redis.call('ZREM', 'running-jobs', id)
          ledger(id, 'cancelled', ARGV[1])
          return 'cancelled_now'
        end
        local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
        -- A redelivery starts over: the progress of an attempt that died is not carried into this one.
        redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1], 'progress', '0', 'queue_ms', ARGV[1] - redis.call('HGET', KEYS[1], 'created_at'))
        if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'worker', ARGV[3]) end
        redis.call('ZREM', 'queued-by-expiry', id)
        redis.call('ZADD', 'running-jobs', ARGV[1], id)
        ledger(id, 'running', ARGV[1])
        redis.call('PUBLISH', KEYS[2], 'running')
        return {'started', attempts, redis.call('GET', KEYS[3])}
        """;

    // KEYS: job, channel, result, input. ARGV: now, new status, allowed-from (space separated), execution_ms,
    // output json ('' for none), result retention seconds, error code, error message, status retention seconds,
    // the worker that must still hold the job ('' for any).
    private const string FinishScript = LedgerAppend + """
        local id = string.sub(KEYS[1], 5)
        local status = redis.call('HGET', KEYS[1], 'status')
        if not status then return 'missing' end
        if not string.find(' ' .. ARGV[3] .. ' ', ' ' .. status .. ' ', 1, true) then return status end
        if ARGV[10] ~= '' and redis.call('HGET', KEYS[1], 'worker') ~= ARGV[10] then return 'moved' end
        redis.call('HSET', KEYS[1], 'status', ARGV[2], 'completed_at', ARGV[1])
        if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'execution_ms', ARGV[4]) end
        if ARGV[2] == 'succeeded' then redis.call('HSET', KEYS[1], 'progress', '1') end
        if ARGV[5] ~= '' then
          redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[6])
          redis.call('HSET', KEYS[1], 'result_expires_at', ARGV[1] + ARGV[6] * 1000)
        end
        if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'error_code', ARGV[7], 'error_message', ARGV[8]) end
        redis.call('EXPIRE', KEYS[1], ARGV[9])
        redis.call('DEL', KEYS[4])
        redis.call('ZREM', 'queued-by-expiry', id)
        redis.call('ZREM', 'running-jobs', id)
        ledger(id, ARGV[2], ARGV[1])
        redis.call('PUBLISH', KEYS[2], ARGV[2])
        return 'ok'
        """;

    // KEYS: job, channel. ARGV: progress (0-1), the worker that must hold the job ('' for any).
    private const string ProgressScript = """
        if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
        if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then return 0 end
        redis.call('HSET', KEYS[1], 'progress', ARGV[1])
        redis.call('PUBLISH', KEYS[2], 'progress')
        return 1
        """;

    // KEYS: job, channel, input. ARGV: now, status retention seconds, cancel channel.
    // queued → cancelled at once; running → flagged, and workers are told on the cancel channel.
    private const string CancelScript = LedgerAppend + """
        local status = redis.call('HGET', KEYS[1], 'status')
        if not status then return 'missing' end
        if status == 'queued' then
          redis.call('HSET', KEYS[1], 'status', 'cancelled', 'completed_at', ARGV[1])
          redis.call('EXPIRE', KEYS[1], ARGV[2])
          redis.call('DEL', KEYS[3])
          redis.call('PUBLISH', KEYS[2], 'cancelled')
          redis.call('ZREM', 'queued-by-expiry', string.sub(KEYS[1], 5))
          ledger(string.sub(KEYS[1], 5), 'cancelled', ARGV[1])
          return 'ok:cancelled'
        end
        if status == 'running' then
          redis.call('HSET', KEYS[1], 'cancel_requested', '1')
          redis.call('PUBLISH', ARGV[3], string.sub(KEYS[1], 5))
          return 'ok:requested'
        end
        return status
        """;

    /// <summary>Workers listen here for running jobs to stop; the message is the job id.</summary>
    public static readonly RedisChannel CancelChannel = RedisChannel.Literal("job-cancel");

    private readonly IDatabase _db = redis.GetDatabase();
    private readonly JobStoreOptions _options = options.Value;

    public static string NewJobId() => Guid.CreateVersion7().ToString("N");

    public static RedisKey JobKey(string id) => "job:" + id;

    public static RedisKey InputKey(string id) => "input:" + id;

    public static RedisKey ResultKey(string id) => "result:" + id;

    public static RedisChannel ChangedChannel(string id) => RedisChannel.Literal("job-changed:" + id);

    /// <summary>A tenant's job ids, all with score 0: ids are UUIDv7 in hex, so their order is submit order.</summary>
    public static RedisKey TenantIndexKey(string tenantId) => "tenant-jobs:" + tenantId;

    /// <summary>Stream of every state change (<c>id</c>, <c>status</c>, <c>at</c> in Unix ms), capped near <see cref="LedgerStreamMaxLength"/> entries; read by the ledger writer.</summary>
    public static readonly RedisKey LedgerStream = "ledger";

    public const int LedgerStreamMaxLength = 1_000_000;

    /// <summary>Queued jobs by expiry (score: <c>expires_at</c>, Unix ms); a job leaves it when it starts or ends.</summary>
    public static readonly RedisKey QueuedByExpiry = "queued-by-expiry";

    /// <summary>Running jobs by start time (Unix ms); a job leaves it when it ends.</summary>
    public static readonly RedisKey RunningJobs = "running-jobs";

    /// <summary>Writes a queued job and its input in one transaction.</summary>
    public async Task CreateAsync(JobRecord job, ReadOnlyMemory<byte> input)
    {
        var tx = _db.CreateTransaction();
        var key = JobKey(job.Id);
        var fields = new List<HashEntry>
        {
            new("id", job.Id),
            new("tenant", job.TenantId),
            new("status", job.Status),
            new("pipeline", job.Pipeline),
            new("model", job.Model),
            new("created_at", job.CreatedAt.ToUnixTimeMilliseconds()),
            new("progress", 0),
            new("attempts", 0),
            new("input_bytes", input.Length),
        };
        if (job.ExpiresAt is { } expiresAt)
        {
            fields.Add(new HashEntry("expires_at", expiresAt.ToUnixTimeMilliseconds()));
            _ = tx.SortedSetAddAsync(QueuedByExpiry, job.Id, expiresAt.ToUnixTimeMilliseconds());
        }

        _ = tx.StreamAddAsync(LedgerStream, [new("id", job.Id), new("status", job.Status), new("at", job.CreatedAt.ToUnixTimeMilliseconds())],
            maxLength: LedgerStreamMaxLength, useApproximateMaxLength: true);
        if (job.MetadataJson is not null)
        {
            fields.Add(new HashEntry("metadata", job.MetadataJson));
        }

        if (job.WebhookJson is not null)
        {
            fields.Add(new HashEntry("webhook", job.WebhookJson));
        }

        _ = tx.HashSetAsync(key, [.. fields]);
        _ = tx.KeyExpireAsync(key, _options.InputRetention + _options.StatusRetention);
        _ = tx.StringSetAsync(InputKey(job.Id), input, _options.InputRetention);
        var index = TenantIndexKey(job.TenantId);
        _ = tx.SortedSetAddAsync(index, job.Id, 0);
        // Ids older than any job can live are dropped from the index as new ones arrive.
        var oldest = job.CreatedAt - _options.InputRetention - _options.StatusRetention;
        _ = tx.SortedSetRemoveRangeByValueAsync(index, RedisValue.Null, IdPrefixAt(oldest), Exclude.None);
        _ = tx.KeyExpireAsync(index, _options.InputRetention + _options.StatusRetention);
        if (!await tx.ExecuteAsync().ConfigureAwait(false))
        {
            throw new RedisException($"Transaction creating job {job.Id} was not committed.");
        }
    }

    /// <summary>Removes a job that never reached the broker, so no orphan is left behind.</summary>
    public async Task DeleteAsync(string id, string tenantId)
    {
        await _db.KeyDeleteAsync([JobKey(id), InputKey(id), ResultKey(id)]).ConfigureAwait(false);
        await _db.SortedSetRemoveAsync(TenantIndexKey(tenantId), id).ConfigureAwait(false);
        await _db.SortedSetRemoveAsync(QueuedByExpiry, id).ConfigureAwait(false);
        await _db.StreamAddAsync(LedgerStream, [new("id", id), new("status", "deleted"), new("at", clock.GetUtcNow().ToUnixTimeMilliseconds())],
            maxLength: LedgerStreamMaxLength, useApproximateMaxLength: true).ConfigureAwait(false);
    }

    /// <summary>
    /// Cancels a job: a queued one at once (it will never run), a running one by flagging it and
    /// telling the workers. Returns the outcome, or the terminal status that made it impossible.
    /// </summary>
    public async Task<CancelOutcome> CancelAsync(string id)
    {
        var reply = (string?)await _db.ScriptEvaluateAsync(
            CancelScript,
            [JobKey(id), ChangedChannel(id).ToString(), InputKey(id)],
            [clock.GetUtcNow().ToUnixTimeMilliseconds(), (long)_options.StatusRetention.TotalSeconds, CancelChannel.ToString()]).ConfigureAwait(false);
        return reply switch
        {
            "ok:cancelled" => CancelOutcome.Cancelled,
            "ok:requested" => CancelOutcome.Requested,
            "missing" or null => CancelOutcome.Missing,
            _ => CancelOutcome.AlreadyTerminal,
        };
    }

    /// <summary>Running → cancelled, after the worker stopped it on request.</summary>
    public Task<bool> MarkCancelledAsync(string id, long executionMs) =>
        FinishAsync(id, JobStatus.Cancelled, JobStatus.Running, executionMs, null, null, null);

    /// <summary>
    /// A page of the tenant's jobs, newest first, starting after <paramref name="after"/> (an id),
    /// keeping those <paramref name="filter"/> accepts. Scans at most <paramref name="scanLimit"/>
    /// ids; the cursor says where to go on (null when the index is exhausted).
    /// </summary>
    public async Task<(List<JobRecord> Jobs, string? Next)> ListAsync(
        string tenantId, string? after, int limit, Func<JobRecord, bool> filter, int scanLimit = 1000)
    {
        var index = TenantIndexKey(tenantId);
        var jobs = new List<JobRecord>(limit);
        var cursor = after;
        var scanned = 0;
        while (jobs.Count < limit && scanned < scanLimit)
        {
            // ZREVRANGEBYLEX spelled out: its arguments run from the high end to the low end.
            var reply = await _db.ExecuteAsync(
                "ZREVRANGEBYLEX", index, cursor is null ? "+" : "(" + cursor, "-", "LIMIT", 0, Math.Min(limit * 2, 200)).ConfigureAwait(false);
            var ids = (RedisValue[])reply!;
            if (ids.Length == 0)
            {
                return (jobs, null);
            }

            // One pipelined round of reads for the page, rather than a round trip per id.
            var page = await Task.WhenAll(ids.Select(id => GetAsync(id.ToString(), includeOutput: false))).ConfigureAwait(false);
            for (var i = 0; i < ids.Length; i++)
            {
                if (++scanned > scanLimit)
                {
                    break;
                }

                var id = ids[i];
                cursor = id.ToString();
                var job = page[i];
                if (job is null)
                {
                    await _db.SortedSetRemoveAsync(index, id).ConfigureAwait(false); // expired: prune lazily
                }
                else if (job.TenantId == tenantId && filter(job))
                {
                    jobs.Add(job);
                    if (jobs.Count == limit)
                    {
                        break;
                    }
                }
            }
        }

        return (jobs, cursor);
    }

    /// <summary>The smallest UUIDv7 hex id of a job created at <paramref name="at"/>.</summary>
    private static RedisValue IdPrefixAt(DateTimeOffset at) =>
        Math.Max(0, at.ToUnixTimeMilliseconds()).ToString("x12", CultureInfo.InvariantCulture);

    public async Task<JobRecord?> GetAsync(string id, bool includeOutput = true)
    {
        var batch = _db.CreateBatch();
        var hashTask = batch.HashGetAllAsync(JobKey(id));
        var resultTask = includeOutput ? batch.StringGetAsync(ResultKey(id)) : Task.FromResult(RedisValue.Null);
        batch.Execute();
        var entries = await hashTask.ConfigureAwait(false);
        if (entries.Length == 0)
        {
            return null;
        }

        var result = await resultTask.ConfigureAwait(false);
        return Read(entries, result.IsNull ? null : result.ToString());
    }

    /// <summary>
    /// Moves a queued (or redelivered running) job to running, counts the attempt and reads the
    /// input, in one round trip. A job flagged for cancel while its worker died ends cancelled here.
    /// </summary>
    public async Task<StartOutcome> TryStartAsync(string id, string inputKey, string? workerId = null)
    {
        var now = clock.GetUtcNow();
        var reply = await _db.ScriptEvaluateAsync(
            StartScript,
            [JobKey(id), ChangedChannel(id).ToString(), inputKey],
            [now.ToUnixTimeMilliseconds(), (long)_options.StatusRetention.TotalSeconds, workerId ?? string.Empty]).ConfigureAwait(false);
        if (reply.Resp2Type == ResultType.Array)
        {
            var parts = (RedisResult[])reply!;
            return new StartOutcome(true, JobStatus.Running, (int)parts[1], now, parts.Length > 2 && !parts[2].IsNull ? (byte[]?)parts[2] : null);
        }

        return new StartOutcome(false, (string?)reply ?? "missing", 0, now, null);
    }

    /// <summary>
    /// Sets a running job's progress (0–1) and tells its waiters; false when the job is no longer
    /// running, or no longer held by <paramref name="workerId"/> (a redelivery took it over).
    /// </summary>
    public async Task<bool> SetProgressAsync(string id, double progress, string? workerId = null)
    {
        var reply = await _db.ScriptEvaluateAsync(
            ProgressScript,
            [JobKey(id), ChangedChannel(id).ToString()],
            [Math.Round(Math.Clamp(progress, 0, 1), 4), workerId ?? string.Empty]).ConfigureAwait(false);
        return (long)reply == 1;
    }

    /// <summary>Running → succeeded with the output. False when the job is no longer running (for example cancelled).</summary>
    public Task<bool> CompleteAsync(string id, string outputJson, long executionMs) =>
        FinishAsync(id, JobStatus.Succeeded, JobStatus.Running, executionMs, outputJson, null, null);

    /// <summary>Queued or running → failed with a code and a message.</summary>
    public Task<bool> FailAsync(string id, string code, string message, long? executionMs = null) =>
        FinishAsync(id, JobStatus.Failed, $"{JobStatus.Queued} {JobStatus.Running}", executionMs, null, code, message);

    /// <summary>Queued → expired: its TTL passed before a worker took it.</summary>
    public Task<bool> ExpireAsync(string id) =>
        FinishAsync(id, JobStatus.Expired, JobStatus.Queued, null, null, "expired", "The job waited in the queue longer than its ttl_seconds.");

    /// <summary>Running → failed, only while <paramref name="workerId"/> still holds the job (no redelivery started it elsewhere).</summary>
    public Task<bool> FailLostAsync(string id, string workerId, string code, string message) =>
        FinishAsync(id, JobStatus.Failed, JobStatus.Running, null, null, code, message, workerId);

    private async Task<bool> FinishAsync(
        string id, string status, string allowedFrom, long? executionMs, string? outputJson, string? code, string? message, string? workerId = null)
    {
        var reply = (string?)await _db.ScriptEvaluateAsync(
            FinishScript,
            [JobKey(id), ChangedChannel(id).ToString(), ResultKey(id), InputKey(id)],
            [
                clock.GetUtcNow().ToUnixTimeMilliseconds(),
                status,
                allowedFrom,
                executionMs?.ToString(CultureInfo.InvariantCulture) ?? string.Empty,
                outputJson ?? string.Empty,
                (long)_options.Retention.TotalSeconds,
                code ?? string.Empty,
                message ?? string.Empty,
                (long)_options.StatusRetention.TotalSeconds,
                workerId ?? string.Empty,
            ]).ConfigureAwait(false);
        return reply == "ok";
    }

    private static JobRecord Read(HashEntry[] entries, string? outputJson)
    {
        var map = entries.ToDictionary(e => e.Name.ToString(), e => e.Value);
        string? Str(string name) => map.TryGetValue(name, out var v) && !v.IsNullOrEmpty ? v.ToString() : null;
        long? Long(string name) => Str(name) is { } s ? long.Parse(s, CultureInfo.InvariantCulture) : null;
        DateTimeOffset? Time(string name) => Long(name) is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;

        return new JobRecord
        {
            Id = Str("id") ?? string.Empty,
            TenantId = Str("tenant") ?? string.Empty,
            Status = Str("status") ?? JobStatus.Queued,
            Pipeline = Str("pipeline") ?? string.Empty,
            Model = Str("model") ?? string.Empty,
            CreatedAt = Time("created_at") ?? DateTimeOffset.UnixEpoch,
            StartedAt = Time("started_at"),
            CompletedAt = Time("completed_at"),
            QueueMs = Long("queue_ms"),
            ExecutionMs = Long("execution_ms"),
            Progress = Str("progress") is { } p ? double.Parse(p, CultureInfo.InvariantCulture) : 0,
            Attempts = (int)(Long("attempts") ?? 0),
            InputBytes = Long("input_bytes") ?? 0,
            OutputJson = outputJson,
            ErrorCode = Str("error_code"),
            ErrorMessage = Str("error_message"),
            MetadataJson = Str("metadata"),
            WebhookJson = Str("webhook"),
            ResultExpiresAt = Time("result_expires_at"),
            ExpiresAt = Time("expires_at"),
            WorkerId = Str("worker"),
        };
    }
}

public enum CancelOutcome
{
    Cancelled,
    Requested,
    AlreadyTerminal,
    Missing,
}

/// <summary>What <see cref="RedisJobStore.TryStartAsync"/> found.</summary>
public sealed record StartOutcome(bool Started, string Status, int Attempt, DateTimeOffset At, byte[]? Input)
{
    /// <summary>This start found a cancel request left by a worker that died, and ended the job cancelled.</summary>
    public bool CancelledNow => Status == "cancelled_now";
}
