using System.Globalization;
using Async.Serving.Blobs;
using Async.Serving.Redis;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Jobs;

/// <summary>
/// Job state, inputs (claim check) and outputs in Redis. Every state change is one Lua script, so a
/// cancel racing a start, or a redelivered message racing its first delivery, cannot both win. The
/// same script that changes a job appends the change to the ledger stream, appends the event that
/// announces it to the <see cref="EventStream"/> outbox (when the job's webhook subscribed to it)
/// and wakes the job's waiters on <c>job-changed:{id}</c>: a change and its event happen together
/// or not at all, whoever makes the change (worker, API, maintenance, dead-letter sweeper).
/// Scripts take their keys and arguments by name; every key they touch is declared, and all of them
/// share the job's shard hash tag, so the store runs on a Redis Cluster as on a single server.
/// An input or output too large for Redis sits in the <paramref name="blobs"/> store (docs/blobs.md):
/// an output's key holds a <see cref="BlobReference"/>, which <see cref="GetAsync"/> follows; an
/// input is referenced by the job hash's <c>input_blob</c> field (when it is kept until, Unix ms: the
/// input key's TTL, without the key), and the start script hands the worker its reference. A job
/// stored before that field existed keeps a reference in its input key, and is read as before.
/// </summary>
public sealed class RedisJobStore(IConnectionMultiplexer redis, IOptions<JobStoreOptions> options, TimeProvider clock, IBlobStore? blobs = null)
{
    // Shared by the scripts. ledger(): the change for the PostgreSQL ledger (Api/Ledger), read even
    // while the API or PostgreSQL is down. announce(): the outbox entry for the webhook relay
    // (Api/Webhooks/JobEventRelay), only for an event the job's webhook subscribed to; extra fields
    // make the entry self-describing, so a relayed event reads the same however late it is relayed.
    // The blob reference's prefix comes from BlobReference, so that the scripts and the C# side cannot drift apart.
    private static readonly string Shared = $$"""
        local function ledgerOf(id, status)
          redis.call('XADD', @ledger, 'MAXLEN', '~', @streamCap, '*', 'id', id, 'status', status, 'at', @now)
        end
        local function ledger(status) ledgerOf(@id, status) end
        local function announceOf(job, id, event, status, extra)
          local webhook = redis.call('HGET', job, 'webhook')
          if not webhook then return end -- most jobs: no webhook, and no failing decode to catch
          local ok, subscription = pcall(cjson.decode, webhook)
          if not ok or type(subscription) ~= 'table' or type(subscription.events) ~= 'table' then return end
          for _, wanted in ipairs(subscription.events) do
            if wanted == event then
              local entry = {'id', id, 'type', 'job.' .. event, 'status', status, 'at', @now}
              for _, v in ipairs(extra) do entry[#entry + 1] = v end
              redis.call('XADD', @events, 'MAXLEN', '~', @streamCap, '*', unpack(entry))
              return
            end
          end
        end
        local function announce(event, status, extra) announceOf(@job, @id, event, status, extra) end
        local function round() return redis.call('HGET', @job, 'requeues') or '0' end
        -- The job's input: a blob named by the hash (input_blob: until when it is kept, Unix ms; the
        -- reference, @inputBlob, is the caller's), else the input key (the bytes, or a reference stored
        -- before input_blob existed). False when it is gone.
        local function readInput()
          local keptUntil = redis.call('HGET', @job, 'input_blob')
          if keptUntil then return tonumber(keptUntil) > tonumber(@now) and @inputBlob end
          return redis.call('GET', @input)
        end
        local function hasInput()
          local keptUntil = redis.call('HGET', @job, 'input_blob')
          if keptUntil then return tonumber(keptUntil) > tonumber(@now) end
          return redis.call('EXISTS', @input) == 1
        end
        local function dropInputOf(job, inputKey)
          redis.call('HDEL', job, 'input_blob')
          redis.call('DEL', inputKey)
        end
        local function dropInput() dropInputOf(@job, @input) end
        -- The job's member of the shard's queued-by-model index (QueuedByModel).
        local function queuedMember() return (redis.call('HGET', @job, 'model') or '') .. '|' .. @id end
        -- The result cache (Api/Cache), per shard: @cacheEntries (cache key -> '<execution ms> <output>'),
        -- @cacheIndex (cache key by store time, Unix ms: the oldest go first), @cacheBytes (the bytes of
        -- the entries), @cacheFlights (cache key -> the job computing it) and @cacheReleased (followers
        -- whose leader was cancelled or expired, for the API to publish). A job and every job following
        -- it share the cache key's shard (the API picks their ids so), so the followers' keys named here
        -- from the shard's hash tag sit in the same slot as the declared ones.
        local function dropEntry(key)
          local length = redis.call('HSTRLEN', @cacheEntries, key)
          if redis.call('HDEL', @cacheEntries, key) == 1 then redis.call('DECRBY', @cacheBytes, length) end
          redis.call('ZREM', @cacheIndex, key)
        end
        local function storeEntry(key, value, ttlMs, maxBytes, maxEntry)
          if #value > maxEntry or #value > maxBytes then return end
          for _, old in ipairs(redis.call('ZRANGEBYSCORE', @cacheIndex, '-inf', @now - ttlMs, 'LIMIT', 0, 100)) do dropEntry(old) end
          dropEntry(key)
          while tonumber(redis.call('GET', @cacheBytes) or '0') + #value > maxBytes do
            local oldest = redis.call('ZRANGE', @cacheIndex, 0, 0)
            if #oldest == 0 then break end
            dropEntry(oldest[1])
          end
          redis.call('HSET', @cacheEntries, key, value)
          redis.call('ZADD', @cacheIndex, @now, key)
          redis.call('INCRBY', @cacheBytes, #value)
        end
        -- Another job of the shard ended by this step (a follower): the same bookkeeping as ended().
        local function endedOther(job, id, status)
          redis.call('EXPIRE', job, @statusRetention)
          redis.call('ZREM', @queuedByExpiry, id)
          ledgerOf(id, status)
          announceOf(job, id, 'completed', status, {'round', redis.call('HGET', job, 'requeues') or '0'})
          redis.call('PUBLISH', 'job-changed:' .. id, status)
        end
        -- A leader ended: a success stores the entry and completes its followers with the output; a
        -- failure fails them with its error (the same input fails the same way); a cancel, expiry or
        -- removal releases them to run on their own.
        -- A job's cache key: its 32 bytes in the hash (see StoredCacheKey), in hex as everywhere else;
        -- a job stored before that holds the hex itself.
        local function cacheKeyOf(job)
          local key = redis.call('HGET', job, 'cache_key')
          if key and #key == 32 then key = (string.gsub(key, '.', function(c) return string.format('%02x', string.byte(c)) end)) end
          return key
        end
        local function settleFlight(status)
          local key = cacheKeyOf(@job)
          if not key or redis.call('HGET', @job, 'leader') then return end
          if redis.call('HGET', @cacheFlights, key) == @id then redis.call('HDEL', @cacheFlights, key) end
          local executionMs = redis.call('HGET', @job, 'execution_ms') or '0'
          -- An output in the blob store (a reference) is not cached: the blob lives as long as the job's result.
          if status == 'succeeded' and @output ~= '' and string.sub(@output, 1, {{BlobReference.Prefix.Length}}) ~= '{{BlobReference.Prefix}}' then
            -- The shard's limits (@cacheLimits); a job stored before them holds its own copy.
            local function limit(field, old) return tonumber(redis.call('HGET', @job, old) or redis.call('HGET', @cacheLimits, field) or '0') end
            storeEntry(key, executionMs .. ' ' .. @output, limit('ttl_ms', 'cache_ttl_ms'), limit('max_bytes', 'cache_max_bytes'), limit('max_entry', 'cache_max_entry'))
          end
          local followers = redis.call('HGET', @job, 'followers')
          if not followers then return end
          local shard = string.sub(@job, 1, #@job - #@id - 5)
          for follower in string.gmatch(followers, '%S+') do
            local job = shard .. ':job:' .. follower
            if redis.call('HGET', job, 'status') == 'queued' and redis.call('HGET', job, 'leader') == @id then
              if status == 'succeeded' then
                redis.call('HSET', job, 'status', 'succeeded', 'completed_at', @now, 'progress', '1', 'cache', 'hit', 'saved_ms', executionMs,
                  'result_expires_at', @now + @resultRetention * 1000)
                redis.call('SET', shard .. ':result:' .. follower, @output, 'EX', @resultRetention)
                dropInputOf(job, shard .. ':input:' .. follower)
                endedOther(job, follower, 'succeeded')
              elseif status == 'failed' then
                redis.call('HSET', job, 'status', 'failed', 'completed_at', @now,
                  'error_code', redis.call('HGET', @job, 'error_code') or 'failed', 'error_message', redis.call('HGET', @job, 'error_message') or '')
                dropInputOf(job, shard .. ':input:' .. follower)
                endedOther(job, follower, 'failed')
              else
                redis.call('HDEL', job, 'leader')
                redis.call('ZADD', @cacheReleased, @now, follower)
              end
            end
          end
        end
        local function ended(status)
          redis.call('HSET', @job, 'status', status, 'completed_at', @now)
          redis.call('EXPIRE', @job, @statusRetention)
          redis.call('ZREM', @queuedByExpiry, @id)
          redis.call('ZREM', @queuedByModel, queuedMember())
          redis.call('ZREM', @runningJobs, @id)
          ledger(status)
          announce('completed', status, {'round', round()})
          redis.call('PUBLISH', @channel, status)
          settleFlight(status)
        end

        """;

    private static readonly RedisScript StartScript = RedisScript.Prepare(Shared + """
        local status = redis.call('HGET', @job, 'status')
        if not status then return 'missing' end
        if status ~= 'queued' and status ~= 'running' then return status end
        if redis.call('HGET', @job, 'cancel_requested') == '1' then
          dropInput()
          ended('cancelled')
          return 'cancelled_now'
        end
        local attempts = redis.call('HINCRBY', @job, 'attempts', 1)
        -- A redelivery starts over: the progress of an attempt that died is not carried into this one.
        redis.call('HSET', @job, 'status', 'running', 'started_at', @now, 'progress', '0', 'queue_ms', @now - redis.call('HGET', @job, 'created_at'))
        if @worker ~= '' then redis.call('HSET', @job, 'worker', @worker) end
        redis.call('ZREM', @queuedByExpiry, @id)
        redis.call('ZREM', @queuedByModel, queuedMember())
        redis.call('ZADD', @runningJobs, @now, @id)
        ledger('running')
        announce('started', 'running', {'attempt', tostring(attempts)})
        redis.call('PUBLISH', @channel, 'running')
        return {'started', attempts, readInput()}
        """);

    // allowedFrom: the statuses the change may start from, space separated. holder: the worker that
    // must still hold the job ('' for any). keepInput: '1' keeps the input (a dead-lettered job may be requeued).
    private static readonly RedisScript FinishScript = RedisScript.Prepare(Shared + """
        local status = redis.call('HGET', @job, 'status')
        if not status then return 'missing' end
        if not string.find(' ' .. @allowedFrom .. ' ', ' ' .. status .. ' ', 1, true) then return status end
        if @holder ~= '' and redis.call('HGET', @job, 'worker') ~= @holder then return 'moved' end
        if @executionMs ~= '' then redis.call('HSET', @job, 'execution_ms', @executionMs) end
        if @status == 'succeeded' then redis.call('HSET', @job, 'progress', '1') end
        if @output ~= '' then
          redis.call('SET', @result, @output, 'EX', @resultRetention)
          redis.call('HSET', @job, 'result_expires_at', @now + @resultRetention * 1000)
        end
        if @errorCode ~= '' then redis.call('HSET', @job, 'error_code', @errorCode, 'error_message', @errorMessage) end
        if @keepInput ~= '1' then dropInput() end
        ended(@status)
        return 'ok'
        """);

    // Progress is no state change: no ledger entry, an outbox event only for a webhook that asked for it.
    private static readonly RedisScript ProgressScript = RedisScript.Prepare(Shared + """
        if redis.call('HGET', @job, 'status') ~= 'running' then return 0 end
        if @worker ~= '' and redis.call('HGET', @job, 'worker') ~= @worker then return 0 end
        redis.call('HSET', @job, 'progress', @progress)
        announce('progress', 'running', {'progress', @progress, 'attempt', redis.call('HGET', @job, 'attempts') or '0', 'started_at', redis.call('HGET', @job, 'started_at') or ''})
        redis.call('PUBLISH', @channel, 'progress')
        return 1
        """);

    // queued → cancelled at once; running → flagged, and workers are told on the cancel channel.
    private static readonly RedisScript CancelScript = RedisScript.Prepare(Shared + """
        local status = redis.call('HGET', @job, 'status')
        if not status then return 'missing' end
        if status == 'queued' then
          dropInput()
          ended('cancelled')
          return 'ok:cancelled'
        end
        if status == 'running' then
          redis.call('HSET', @job, 'cancel_requested', '1')
          redis.call('PUBLISH', @cancelChannel, @id)
          return 'ok:requested'
        end
        return status
        """);

    // failed → queued again, for an operator's requeue: only while the input is still stored. The
    // job starts over (attempts from 0) in a new round, so its next completion is a new event.
    private static readonly RedisScript RequeueScript = RedisScript.Prepare(Shared + """
        local status = redis.call('HGET', @job, 'status')
        if not status then return 'missing' end
        if status ~= 'failed' then return status end
        if not hasInput() then return 'no_input' end
        redis.call('HDEL', @job, 'started_at', 'completed_at', 'execution_ms', 'error_code', 'error_message', 'worker', 'cancel_requested', 'queue_ms', 'expires_at')
        redis.call('HSET', @job, 'status', 'queued', 'progress', '0', 'attempts', '0')
        redis.call('HINCRBY', @job, 'requeues', 1)
        redis.call('EXPIRE', @job, @statusRetention)
        redis.call('ZADD', @queuedByModel, 0, queuedMember())
        ledger('queued')
        redis.call('PUBLISH', @channel, 'queued')
        return 'ok'
        """);

    // A job of the result cache (Api/Cache), made in one step with what the cache holds: a stored
    // entry within its TTL makes it succeeded at once (a hit: no message, no worker; its event goes to
    // the outbox as a worker's completion would); else, while another job computes the same key (a
    // flight), it follows that job (when @follow is '1'); else it leads a flight of its own and the
    // caller sends its message. @fields: the job hash's fields, a JSON array of names and values;
    // @followerFields: more of them, stored for a follower only (what its message is made from if its
    // leader ends without an output). @inputKeptUntil: set for an input in the blob store (the
    // input_blob field), else @inputBytes go to the input key.
    private static readonly RedisScript CreateCachedScript = RedisScript.Prepare(Shared + """
        local fields = cjson.decode(@fields)
        local value = redis.call('HGET', @cacheEntries, @cacheKey)
        if value then
          if tonumber(redis.call('ZSCORE', @cacheIndex, @cacheKey) or '0') > @now - @cacheTtlMs then
            local space = string.find(value, ' ', 1, true)
            local savedMs = string.sub(value, 1, space - 1)
            redis.call('HSET', @job, unpack(fields))
            redis.call('HSET', @job, 'status', 'succeeded', 'completed_at', @now, 'progress', '1', 'cache', 'hit', 'cache_key', @cacheKeyStored,
              'saved_ms', savedMs, 'result_expires_at', @now + @resultRetention * 1000)
            redis.call('SET', @result, string.sub(value, space + 1), 'EX', @resultRetention)
            redis.call('EXPIRE', @job, @statusRetention)
            ledger('succeeded')
            announce('completed', 'succeeded', {'round', '0'})
            redis.call('PUBLISH', @channel, 'succeeded')
            return {'hit', savedMs}
          end
          dropEntry(@cacheKey)
        end
        local function queued()
          redis.call('HSET', @job, unpack(fields))
          redis.call('HSET', @job, 'cache_key', @cacheKeyStored) -- cache 'miss' unless set otherwise (Read)
          redis.call('EXPIRE', @job, @jobRetention)
          if @inputKeptUntil ~= '' then
            redis.call('HSET', @job, 'input_blob', @inputKeptUntil)
          else
            redis.call('SET', @input, @inputBytes, 'EX', @inputRetention)
          end
          if @expiresAt ~= '' then redis.call('ZADD', @queuedByExpiry, @expiresAt, @id) end
          ledger('queued')
        end
        local leader = redis.call('HGET', @cacheFlights, @cacheKey)
        if leader then
          local leaderJob = string.sub(@job, 1, #@job - #@id - 5) .. ':job:' .. leader
          local status = redis.call('HGET', leaderJob, 'status')
          if status == 'queued' or status == 'running' then
            if @follow == '1' then
              queued()
              local more = cjson.decode(@followerFields)
              if #more > 0 then redis.call('HSET', @job, unpack(more)) end
              redis.call('HSET', @job, 'leader', leader)
              redis.call('HSET', leaderJob, 'followers', (redis.call('HGET', leaderJob, 'followers') or '') .. ' ' .. @id)
              return {'follow', leader}
            end
          else
            redis.call('HDEL', @cacheFlights, @cacheKey)
          end
        end
        queued()
        redis.call('HSET', @cacheLimits, 'ttl_ms', @cacheTtlMs, 'max_bytes', @cacheMaxBytes, 'max_entry', @cacheMaxEntry)
        redis.call('ZADD', @queuedByModel, 0, queuedMember())
        if @follow == '1' then redis.call('HSET', @cacheFlights, @cacheKey, @id) end
        return {'lead'}
        """);

    // A job removed because its publish failed: a flight it led ends, and its followers are released.
    private static readonly RedisScript AbandonScript = RedisScript.Prepare(Shared + """
        if redis.call('EXISTS', @job) == 1 then settleFlight('deleted') end
        return 'ok'
        """);

    /// <summary>Workers listen here for running jobs to stop; the message is the job id.</summary>
    public static readonly RedisChannel CancelChannel = RedisChannel.Literal("job-cancel");

    private readonly IDatabase _db = redis.GetDatabase();
    private readonly JobStoreOptions _options = options.Value;
    private bool? _standalone;

    public static string NewJobId() => Guid.CreateVersion7().ToString("N");

    /// <summary>
    /// Job keys are spread over <see cref="ShardCount"/> shards by the last hex digit of the id (random
    /// in a UUIDv7). A shard's keys share a hash tag, <c>{jobs-X}</c>, so they sit in one Redis Cluster
    /// slot: a job's hash, input and result, and the shard's ledger stream, event stream and indexes
    /// by expiry and by start, which is what lets one script change a job and write its ledger entry
    /// and event atomically on a cluster too. On a single server the tags are just part of the names.
    /// </summary>
    public const int ShardCount = 16;

    /// <summary>The shards' hash tags, <c>{jobs-0}</c> to <c>{jobs-f}</c>.</summary>
    public static readonly IReadOnlyList<string> Shards = [.. Enumerable.Range(0, ShardCount).Select(i => $"{{jobs-{i:x}}}")];

    /// <summary>The shard of a job id (any string: ids from a URL are not trusted to be hex).</summary>
    public static string ShardOf(string id) =>
        Shards[id.Length == 0 ? 0 : (HexValue(id[^1]) is var v and >= 0 ? v : id[^1] % ShardCount)];

    private static int HexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };

    public static RedisKey JobKey(string id) => $"{ShardOf(id)}:job:{id}";

    public static RedisKey InputKey(string id) => $"{ShardOf(id)}:input:{id}";

    public static RedisKey ResultKey(string id) => $"{ShardOf(id)}:result:{id}";

    public static RedisChannel ChangedChannel(string id) => RedisChannel.Literal("job-changed:" + id);

    /// <summary>A tenant's job ids, all with score 0: ids are UUIDv7 in hex, so their order is submit order.</summary>
    public static RedisKey TenantIndexKey(string tenantId) => "tenant-jobs:" + tenantId;

    /// <summary>A shard's stream of every state change (<c>id</c>, <c>status</c>, <c>at</c> in Unix ms), capped near <see cref="StreamMaxLength"/> entries; read by the ledger writer.</summary>
    public static RedisKey LedgerStream(string shard) => shard + ":ledger";

    /// <summary>
    /// A shard's outbox: one entry per event a job's webhook subscribed to (<c>id</c>, <c>type</c>
    /// <c>job.started|job.progress|job.completed</c>, <c>status</c>, <c>at</c> in Unix ms, and
    /// <c>attempt</c> and <c>progress</c> (with <c>started_at</c>) for a running job, <c>round</c> (how
    /// often an operator requeued it) for an ended one), appended by the script that made the change;
    /// read at least once by the webhook relay, which deletes what it has handed to Hangfire.
    /// </summary>
    public static RedisKey EventStream(string shard) => shard + ":job-events";

    /// <summary>Near how many entries each ledger and event stream is capped (approximate trimming).</summary>
    public const int StreamMaxLength = 1_000_000;

    /// <summary>A shard's queued jobs by expiry (score: <c>expires_at</c>, Unix ms); a job leaves it when it starts or ends.</summary>
    public static RedisKey QueuedByExpiry(string shard) => shard + ":queued-by-expiry";

    /// <summary>A shard's running jobs by start time (Unix ms); a job leaves it when it ends.</summary>
    public static RedisKey RunningJobs(string shard) => shard + ":running-jobs";

    /// <summary>
    /// A shard's queued jobs by model: members <c>&lt;model&gt;|&lt;id&gt;</c>, all with score 0, so one
    /// model's members are a lexical range and, ids being UUIDv7 in hex, in submit order. Written by
    /// the same steps that change a job's status (create, start, end, requeue), read by
    /// <see cref="QueuedByModelAsync"/> for the queue depth and oldest queued age metrics.
    /// </summary>
    public static RedisKey QueuedByModel(string shard) => shard + ":queued-by-model";

    /// <summary>A shard's result cache entries: cache key → <c>&lt;execution ms&gt; &lt;output JSON&gt;</c> (see <see cref="CreateCachedAsync"/>).</summary>
    public static RedisKey CacheEntries(string shard) => shard + ":cache";

    /// <summary>A shard's cache keys by the time their entry was stored (Unix ms): expiry and eviction take the oldest first.</summary>
    public static RedisKey CacheIndex(string shard) => shard + ":cache-index";

    /// <summary>The bytes of a shard's cache entries, kept by the scripts that store and drop them.</summary>
    public static RedisKey CacheBytes(string shard) => shard + ":cache-bytes";

    /// <summary>
    /// A shard's cache limits (<c>ttl_ms</c>, <c>max_bytes</c>, <c>max_entry</c>) for the entries its
    /// leaders store when they succeed, written by each leader's create: the API's <c>Serving:Cache</c>
    /// settings, which the worker that finishes a leader does not know. Kept once per shard rather than
    /// in every leader's hash (docs/benchmarks.md, step 11); every API of a deployment has the same settings.
    /// </summary>
    public static RedisKey CacheLimits(string shard) => shard + ":cache-limits";

    /// <summary>A shard's flights: cache key → the id of the job computing it, while it is queued or running.</summary>
    public static RedisKey CacheFlights(string shard) => shard + ":cache-flights";

    /// <summary>A shard's followers whose leader was cancelled, expired or removed (score: when, Unix ms): the API sends their messages.</summary>
    public static RedisKey CacheReleased(string shard) => shard + ":cache-released";

    /// <summary>A new job id (UUIDv7) in the shard of <paramref name="key"/>: its last hex digit is the shard's.</summary>
    public static string NewJobIdIn(string key)
    {
        var shard = ShardOf(key);
        return string.Concat(NewJobId().AsSpan(0, 31), shard.AsSpan(shard.Length - 2, 1));
    }

    /// <summary>When the job with this id was created (UUIDv7: its first 48 bits are Unix ms); null for an id not made by <see cref="NewJobId"/>.</summary>
    public static DateTimeOffset? CreatedAtOf(string id) =>
        id.Length == 32 && long.TryParse(id.AsSpan(0, 12), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var ms)
            ? DateTimeOffset.FromUnixTimeMilliseconds(ms)
            : null;

    /// <summary>
    /// Queued jobs of each model and when the oldest of them was submitted (null when none waits),
    /// over every shard in one pipelined round of two O(log n) reads per shard and model.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, (long Queued, DateTimeOffset? Oldest)>> QueuedByModelAsync(IEnumerable<string> modelIds)
    {
        ArgumentNullException.ThrowIfNull(modelIds);
        var batch = _db.CreateBatch();
        var reads = modelIds.Distinct(StringComparer.Ordinal).Select(model =>
        {
            // '|' sorts just below '}': from "m|" up to "m}" (excluded) is every member of model m and nothing else.
            RedisValue from = model + "|", to = model + "}";
            return (model, Shards.Select(shard => (
                Count: batch.SortedSetLengthByValueAsync(QueuedByModel(shard), from, to, Exclude.Stop),
                First: batch.SortedSetRangeByValueAsync(QueuedByModel(shard), from, to, Exclude.Stop, Order.Ascending, skip: 0, take: 1))).ToList());
        }).ToList();
        batch.Execute();
        var result = new Dictionary<string, (long, DateTimeOffset?)>(StringComparer.Ordinal);
        foreach (var (model, shards) in reads)
        {
            long queued = 0;
            DateTimeOffset? oldest = null;
            foreach (var (count, first) in shards)
            {
                queued += await count.ConfigureAwait(false);
                var members = await first.ConfigureAwait(false);
                if (members.Length > 0 && CreatedAtOf(members[0].ToString()[(model.Length + 1)..]) is { } created && (oldest is null || created < oldest))
                {
                    oldest = created;
                }
            }

            result[model] = (queued, oldest);
        }

        return result;
    }

    /// <summary>Set once every job queued before <see cref="QueuedByModel"/> existed has been added to it.</summary>
    public static readonly RedisKey QueuedByModelBackfilled = "queued-by-model-backfilled";

    /// <summary>
    /// Adds the jobs queued before <see cref="QueuedByModel"/> existed (an upgrade) to it, once per
    /// Redis: every queued job is in its shard's <see cref="QueuedByExpiry"/>. Idempotent; a job that
    /// starts meanwhile and is added anyway leaves the index when it ends. Returns the jobs added.
    /// </summary>
    public async Task<int> BackfillQueuedByModelAsync(CancellationToken cancellationToken)
    {
        if (await _db.KeyExistsAsync(QueuedByModelBackfilled).ConfigureAwait(false))
        {
            return 0;
        }

        var added = 0;
        foreach (var shard in Shards)
        {
            foreach (var id in await _db.SortedSetRangeByRankAsync(QueuedByExpiry(shard)).ConfigureAwait(false))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var fields = await _db.HashGetAsync(JobKey(id.ToString()), ["status", "model"]).ConfigureAwait(false);
                if (fields[0] == JobStatuses.Queued && !fields[1].IsNullOrEmpty
                    && await _db.SortedSetAddAsync(QueuedByModel(shard), fields[1] + "|" + id, 0).ConfigureAwait(false))
                {
                    added++;
                }
            }
        }

        await _db.StringSetAsync(QueuedByModelBackfilled, "1").ConfigureAwait(false);
        return added;
    }

    /// <summary>Running jobs over every shard and when the longest-running of them started (null when none runs).</summary>
    public async Task<(long Running, DateTimeOffset? OldestStart)> RunningAsync()
    {
        var batch = _db.CreateBatch();
        var reads = Shards.Select(shard => (
            Count: batch.SortedSetLengthAsync(RunningJobs(shard)),
            First: batch.SortedSetRangeByRankWithScoresAsync(RunningJobs(shard), 0, 0))).ToList();
        batch.Execute();
        long running = 0;
        double? oldest = null;
        foreach (var (count, first) in reads)
        {
            running += await count.ConfigureAwait(false);
            if (await first.ConfigureAwait(false) is [var entry] && (oldest is null || entry.Score < oldest))
            {
                oldest = entry.Score;
            }
        }

        return (running, oldest is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds((long)ms) : null);
    }

    /// <summary>
    /// Writes a queued job, its input and its ledger entry in one transaction (one shard). On a single
    /// Redis server the tenant's index goes in the same transaction; on a cluster, where it is in a slot
    /// of its own, it is written first: a crash in between leaves an id there that names no job, which
    /// listing prunes, and never a job that its tenant cannot list.
    /// </summary>
    /// <param name="input">The input's bytes, or a <see cref="BlobReference"/> to them (<see cref="BlobNames.Input"/>: kept as the hash's <c>input_blob</c> field, no input key).</param>
    /// <param name="inputLength">The input's size when <paramref name="input"/> is a reference.</param>
    public async Task CreateAsync(JobRecord job, ReadOnlyMemory<byte> input, long? inputLength = null)
    {
        ArgumentNullException.ThrowIfNull(job);
        var index = TenantIndexKey(job.TenantId);
        var indexing = _db.CreateTransaction();
        _ = indexing.SortedSetAddAsync(index, job.Id, 0);
        // Ids older than any job can live are dropped from the index as new ones arrive.
        var oldest = job.CreatedAt - _options.InputRetention - _options.StatusRetention;
        _ = indexing.SortedSetRemoveRangeByValueAsync(index, RedisValue.Null, IdPrefixAt(oldest), Exclude.None);
        _ = indexing.KeyExpireAsync(index, _options.InputRetention + _options.StatusRetention);
        // On one Redis server the index and the job go in one transaction (one round trip, both or
        // neither); on a Redis Cluster they live in different slots, so the index is committed first.
        var tx = indexing;
        if (!IsStandalone())
        {
            if (!await indexing.ExecuteAsync().ConfigureAwait(false))
            {
                throw new RedisException($"Transaction indexing job {job.Id} was not committed.");
            }

            tx = _db.CreateTransaction();
        }

        var shard = ShardOf(job.Id);
        var key = JobKey(job.Id);
        // No id (the key names it), progress or attempts (0 until a worker starts it): what is not
        // stored costs no memory while the job waits (docs/benchmarks.md, step 11).
        var fields = new List<HashEntry>
        {
            new("tenant", job.TenantId),
            new("status", job.Status),
            new("pipeline", job.Pipeline),
            new("model", job.Model),
            new("created_at", job.CreatedAt.ToUnixTimeMilliseconds()),
            new("input_bytes", inputLength ?? input.Length),
        };
        var keptUntil = InputKeptUntil(job, input.Span);
        if (keptUntil is not null)
        {
            fields.Add(new HashEntry("input_blob", keptUntil));
        }

        if (job.ExpiresAt is { } expiresAt)
        {
            fields.Add(new HashEntry("expires_at", expiresAt.ToUnixTimeMilliseconds()));
            _ = tx.SortedSetAddAsync(QueuedByExpiry(shard), job.Id, expiresAt.ToUnixTimeMilliseconds());
        }

        _ = tx.SortedSetAddAsync(QueuedByModel(shard), job.Model + "|" + job.Id, 0);

        _ = tx.StreamAddAsync(LedgerStream(shard), [new("id", job.Id), new("status", job.Status), new("at", job.CreatedAt.ToUnixTimeMilliseconds())],
            maxLength: StreamMaxLength, useApproximateMaxLength: true);
        fields.AddRange(OptionalFields(job).Select(f => new HashEntry(f.Name, f.Value)));
        _ = tx.HashSetAsync(key, [.. fields]);
        _ = tx.KeyExpireAsync(key, _options.InputRetention + _options.StatusRetention);
        if (keptUntil is null)
        {
            _ = tx.StringSetAsync(InputKey(job.Id), input, _options.InputRetention);
        }

        if (!await tx.ExecuteAsync().ConfigureAwait(false))
        {
            throw new RedisException($"Transaction creating job {job.Id} was not committed.");
        }
    }

    /// <summary>
    /// Whether every key of this store is on one Redis server that is not a cluster node, so one
    /// transaction may span shards and tenant indexes. Known once every server has connected; false
    /// until then (the two-step write is right on any server).
    /// </summary>
    private bool IsStandalone()
    {
        if (_standalone is { } known)
        {
            return known;
        }

        var servers = _db.Multiplexer.GetServers();
        if (servers.Length == 0 || servers.Any(s => !s.IsConnected))
        {
            return false;
        }

        var standalone = servers.All(s => s.ServerType == ServerType.Standalone) && servers.Count(s => !s.IsReplica) == 1;
        _standalone = standalone;
        return standalone;
    }

    /// <summary>
    /// When a job's input in the blob store stops being referenced (Unix ms, the end of
    /// <see cref="JobStoreOptions.InputRetention"/>), for its <c>input_blob</c> field; null when
    /// <paramref name="input"/> is the bytes (or a reference to another name), kept in the input key.
    /// </summary>
    private string? InputKeptUntil(JobRecord job, ReadOnlySpan<byte> input) =>
        BlobReference.Decode(input) is { } name && InputBlobReference(job.Id) == BlobReference.EncodeText(name)
            ? (job.CreatedAt + _options.InputRetention).ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)
            : null;

    /// <summary>The reference to job <paramref name="id"/>'s input blob (<see cref="BlobNames.Input"/>); empty for an id no blob can be named after.</summary>
    private static string InputBlobReference(string id) =>
        BlobNames.IsValid(BlobNames.Inputs + id) && !id.Contains('/', StringComparison.Ordinal) ? BlobReference.EncodeText(BlobNames.Input(id)) : string.Empty;

    /// <summary>
    /// The fields a new job's hash holds when the submit gave them: one list for every way a job is
    /// created. A normal priority is not stored: a job without one is normal (<see cref="Contracts.JobPriorities.OrNormal"/>).
    /// </summary>
    private static IEnumerable<(string Name, string Value)> OptionalFields(JobRecord job)
    {
        (string, string?)[] optional =
        [
            ("priority", job.Priority == Contracts.JobPriorities.Normal ? null : job.Priority), ("metadata", job.MetadataJson), ("webhook", job.WebhookJson), ("traceparent", job.TraceParent),
            ("requested_model", job.RequestedModel), ("routing_key", job.RoutingKey),
        ];
        return optional.Where(f => f.Item2 is not null).Select(f => (f.Item1, f.Item2!));
    }

    /// <summary>
    /// Creates a job of the result cache in one step (see <see cref="CreateCachedScript"/>): a hit
    /// (the job is stored succeeded with the cached output, its event in the outbox), a follower of the
    /// job computing the same key, or a leader whose message the caller sends. The job's id must be in
    /// the key's shard (<see cref="NewJobIdIn"/>). The tenant's index is written first, as in <see cref="CreateAsync"/>.
    /// <paramref name="input"/> is stored as in <see cref="CreateAsync"/>.
    /// </summary>
    /// <param name="extraFields">What a follower's message is made from should its leader end without an output
    /// (<see cref="ReleaseFieldsAsync"/>): stored for a follower only, since a leader's message is sent at submit.</param>
    public async Task<CachedCreate> CreateCachedAsync(
        JobRecord job, byte[] input, CacheTicket ticket, IReadOnlyList<(string Name, string Value)> extraFields, long? inputLength = null)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(ticket);
        ArgumentNullException.ThrowIfNull(extraFields);
        if (ShardOf(job.Id) != ShardOf(ticket.Key))
        {
            throw new ArgumentException($"Job {job.Id} is not in the shard of its cache key.", nameof(job));
        }

        var index = TenantIndexKey(job.TenantId);
        var indexing = _db.CreateTransaction();
        _ = indexing.SortedSetAddAsync(index, job.Id, 0);
        _ = indexing.KeyExpireAsync(index, _options.InputRetention + _options.StatusRetention);
        if (!await indexing.ExecuteAsync().ConfigureAwait(false))
        {
            throw new RedisException($"Transaction indexing job {job.Id} was not committed.");
        }

        var fields = new List<string>
        {
            "tenant", job.TenantId, "status", JobStatuses.Queued, "pipeline", job.Pipeline, "model", job.Model,
            "created_at", job.CreatedAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture),
            "input_bytes", (inputLength ?? input.Length).ToString(CultureInfo.InvariantCulture),
        };
        var followerFields = new List<string>();
        void Add(string name, string? value, List<string>? to = null)
        {
            if (value is not null)
            {
                (to ?? fields).Add(name);
                (to ?? fields).Add(value);
            }
        }

        Add("expires_at", job.ExpiresAt?.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture));
        foreach (var (name, value) in OptionalFields(job))
        {
            Add(name, value);
        }

        foreach (var (name, value) in extraFields)
        {
            Add(name, value, followerFields);
        }

        var keptUntil = InputKeptUntil(job, input);

        var args = Args(job.Id) with
        {
            now = job.CreatedAt.ToUnixTimeMilliseconds(),
            fields = System.Text.Json.JsonSerializer.Serialize(fields, CoreJsonContext.Default.ListString),
            followerFields = System.Text.Json.JsonSerializer.Serialize(followerFields, CoreJsonContext.Default.ListString),
            cacheKey = ticket.Key,
            cacheKeyStored = StoredCacheKey(ticket.Key),
            cacheTtlMs = (long)ticket.Ttl.TotalMilliseconds,
            cacheMaxBytes = ticket.MaxShardBytes,
            cacheMaxEntry = ticket.MaxEntryBytes,
            follow = ticket.SingleFlight ? "1" : "0",
            expiresAt = job.ExpiresAt?.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture) ?? string.Empty,
            inputBytes = keptUntil is null ? input : [],
            inputKeptUntil = keptUntil ?? string.Empty,
            jobRetention = (long)(_options.InputRetention + _options.StatusRetention).TotalSeconds,
            inputRetention = (long)_options.InputRetention.TotalSeconds,
        };
        var parts = (RedisResult[])(await EvaluateAsync(CreateCachedScript, args).ConfigureAwait(false))!;
        return (string?)parts[0] switch
        {
            "hit" => new CachedCreate.Hit(long.TryParse((string?)parts[1], CultureInfo.InvariantCulture, out var saved) ? saved : 0),
            "follow" => new CachedCreate.Follow((string)parts[1]!),
            _ => new CachedCreate.Lead(),
        };
    }

    /// <summary>
    /// A cache key as a job's hash keeps it: a SHA-256 in lower-case hex (every key the API makes) as
    /// its 32 bytes, half the size (docs/benchmarks.md, step 11); any other key as it is. The scripts
    /// turn it back into hex (<c>cacheKeyOf</c>).
    /// </summary>
    private static byte[] StoredCacheKey(string key) =>
        key.Length == 64 && !key.AsSpan().ContainsAnyExcept("0123456789abcdef") ? Convert.FromHexString(key) : System.Text.Encoding.UTF8.GetBytes(key);

    /// <summary>
    /// Claims up to <paramref name="max"/> followers per shard released by their leader's cancel,
    /// expiry or removal (see <see cref="CacheReleased"/>) for <paramref name="lease"/>: another API
    /// takes none of them until the lease ends, so each is sent once unless its sender dies first.
    /// </summary>
    public async Task<IReadOnlyList<string>> ClaimReleasedFollowersAsync(int max, TimeSpan lease)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var claims = Shards.Select(shard => ClaimReleasedScript.EvaluateAsync(_db, new
        {
            released = CacheReleased(shard),
            now,
            until = now + (long)lease.TotalMilliseconds,
            max,
        })).ToList();
        var ids = new List<string>();
        foreach (var claim in claims)
        {
            ids.AddRange(((RedisValue[])(await claim.ConfigureAwait(false))!).Select(v => v.ToString()));
        }

        return ids;
    }

    // Members whose score (when they may be taken) has come, given a new score: the end of the lease.
    private static readonly RedisScript ClaimReleasedScript = RedisScript.Prepare("""
        local ids = redis.call('ZRANGEBYSCORE', @released, '-inf', @now, 'LIMIT', 0, @max)
        for _, id in ipairs(ids) do redis.call('ZADD', @released, @until, id) end
        return ids
        """);

    /// <summary>A released follower was handled (its message sent, or it is no longer queued).</summary>
    public Task ForgetReleasedAsync(string id) => _db.SortedSetRemoveAsync(CacheReleased(ShardOf(id)), id);

    /// <summary>The fields a released follower's message is made from, as stored at submit (null when the job is gone).</summary>
    public async Task<IReadOnlyDictionary<string, string>?> ReleaseFieldsAsync(string id)
    {
        var entries = await _db.HashGetAllAsync(JobKey(id)).ConfigureAwait(false);
        return entries.Length == 0 ? null : entries.ToDictionary(e => e.Name.ToString(), e => e.Value.ToString(), StringComparer.Ordinal);
    }

    /// <summary>The result cache's entries and their bytes, over every shard, in one pipelined round.</summary>
    public async Task<(long Entries, long Bytes)> CacheSizeAsync()
    {
        var batch = _db.CreateBatch();
        var reads = Shards.Select(shard => (Entries: batch.SortedSetLengthAsync(CacheIndex(shard)), Bytes: batch.StringGetAsync(CacheBytes(shard)))).ToList();
        batch.Execute();
        long entries = 0, bytes = 0;
        foreach (var (count, size) in reads)
        {
            entries += await count.ConfigureAwait(false);
            bytes += (long?)await size.ConfigureAwait(false) ?? 0;
        }

        return (entries, bytes);
    }

    /// <summary>Whether the cache holds an entry for <paramref name="key"/> (not checking its TTL).</summary>
    public Task<bool> CacheHoldsAsync(string key) => _db.HashExistsAsync(CacheEntries(ShardOf(key)), key);

    /// <summary>Removes a job that never reached the broker, so no orphan is left behind.</summary>
    public async Task DeleteAsync(string id, string tenantId)
    {
        await EvaluateAsync(AbandonScript, Args(id)).ConfigureAwait(false);
        var shard = ShardOf(id);
        if (await _db.HashGetAsync(JobKey(id), "model").ConfigureAwait(false) is { IsNull: false } model)
        {
            await _db.SortedSetRemoveAsync(QueuedByModel(shard), model + "|" + id).ConfigureAwait(false);
        }

        await _db.KeyDeleteAsync([JobKey(id), InputKey(id), ResultKey(id)]).ConfigureAwait(false);
        await DeleteBlobsAsync(id, output: true).ConfigureAwait(false);
        await _db.SortedSetRemoveAsync(TenantIndexKey(tenantId), id).ConfigureAwait(false);
        await _db.SortedSetRemoveAsync(QueuedByExpiry(shard), id).ConfigureAwait(false);
        await _db.StreamAddAsync(LedgerStream(shard), [new("id", id), new("status", "deleted"), new("at", clock.GetUtcNow().ToUnixTimeMilliseconds())],
            maxLength: StreamMaxLength, useApproximateMaxLength: true).ConfigureAwait(false);
    }

    /// <summary>
    /// Cancels a job: a queued one at once (it will never run), a running one by flagging it and
    /// telling the workers. Returns the outcome, or the terminal status that made it impossible.
    /// </summary>
    public async Task<CancelOutcome> CancelAsync(string id)
    {
        var reply = (string?)await EvaluateAsync(CancelScript, Args(id)).ConfigureAwait(false);
        if (reply == "ok:cancelled")
        {
            await DeleteBlobsAsync(id).ConfigureAwait(false);
        }

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
        FinishAsync(id, JobStatuses.Cancelled, JobStatuses.Running, executionMs, null, null, null);

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
        var output = result.IsNull ? null : result.ToString();
        if (BlobReference.Decode(output) is { } blob)
        {
            output = await ReadBlobTextAsync(blob).ConfigureAwait(false);
        }

        return Read(id, entries, output);
    }

    /// <summary>An output kept in the blob store; null when it is gone (its result expired as it was read).</summary>
    private async Task<string?> ReadBlobTextAsync(string name)
    {
        if (blobs is null)
        {
            return null;
        }

        var stream = await blobs.OpenReadAsync(name, CancellationToken.None).ConfigureAwait(false);
        if (stream is null)
        {
            return null;
        }

        await using (stream.ConfigureAwait(false))
        {
            using var reader = new StreamReader(stream, System.Text.Encoding.UTF8);
            return await reader.ReadToEndAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Whether job <paramref name="id"/> still references its input blob (<see cref="BlobNames.Input"/>),
    /// for the blob sweep: its hash's <c>input_blob</c> has not passed, or its input key (a job stored
    /// before that field existed) still exists.
    /// </summary>
    public async Task<bool> ReferencesInputBlobAsync(string id)
    {
        var batch = _db.CreateBatch();
        var keptUntil = batch.HashGetAsync(JobKey(id), "input_blob");
        var inputKey = batch.KeyExistsAsync(InputKey(id));
        batch.Execute();
        return (long?)await keptUntil.ConfigureAwait(false) > clock.GetUtcNow().ToUnixTimeMilliseconds() | await inputKey.ConfigureAwait(false);
    }

    /// <summary>Deletes the job's input and output blobs, if any (a step that ended the job removed their references).</summary>
    private async Task DeleteBlobsAsync(string id, bool output = false)
    {
        if (blobs is null)
        {
            return;
        }

        try
        {
            await blobs.DeleteAsync(BlobNames.Input(id), CancellationToken.None).ConfigureAwait(false);
            if (output)
            {
                await blobs.DeleteAsync(BlobNames.Output(id), CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            // Left for the blob sweep, which deletes every blob no key references.
        }
    }

    /// <summary>
    /// Moves a queued (or redelivered running) job to running, counts the attempt and reads the
    /// input, in one round trip. A job flagged for cancel while its worker died ends cancelled here.
    /// </summary>
    public async Task<StartOutcome> TryStartAsync(string id, string? workerId = null)
    {
        var args = Args(id) with { worker = workerId ?? string.Empty, inputBlob = InputBlobReference(id) };
        var now = DateTimeOffset.FromUnixTimeMilliseconds(args.now);
        var reply = await EvaluateAsync(StartScript, args).ConfigureAwait(false);
        if (reply.Resp2Type == ResultType.Array)
        {
            var parts = (RedisResult[])reply!;
            return new StartOutcome(true, JobStatuses.Running, (int)parts[1], now, parts.Length > 2 && !parts[2].IsNull ? (byte[]?)parts[2] : null);
        }

        var outcome = new StartOutcome(false, (string?)reply ?? "missing", 0, now, null);
        if (outcome.CancelledNow)
        {
            await DeleteBlobsAsync(id).ConfigureAwait(false);
        }

        return outcome;
    }

    /// <summary>
    /// Sets a running job's progress (0–1) and tells its waiters; false when the job is no longer
    /// running, or no longer held by <paramref name="workerId"/> (a redelivery took it over).
    /// </summary>
    public async Task<bool> SetProgressAsync(string id, double progress, string? workerId = null)
    {
        var reply = await EvaluateAsync(ProgressScript, Args(id) with
        {
            progress = Math.Round(Math.Clamp(progress, 0, 1), 4).ToString(CultureInfo.InvariantCulture),
            worker = workerId ?? string.Empty,
        }).ConfigureAwait(false);
        return (long)reply == 1;
    }

    /// <summary>Running → succeeded with the output. False when the job is no longer running (for example cancelled).</summary>
    public Task<bool> CompleteAsync(string id, string outputJson, long executionMs) =>
        FinishAsync(id, JobStatuses.Succeeded, JobStatuses.Running, executionMs, outputJson, null, null);

    /// <summary>Queued or running → failed with a code and a message.</summary>
    public Task<bool> FailAsync(string id, string code, string message, long? executionMs = null) =>
        FinishAsync(id, JobStatuses.Failed, $"{JobStatuses.Queued} {JobStatuses.Running}", executionMs, null, code, message);

    /// <summary>Queued → expired: its TTL passed before a worker took it.</summary>
    public async Task<bool> ExpireAsync(string id)
    {
        var expired = await FinishAsync(id, JobStatuses.Expired, JobStatuses.Queued, null, null, "expired", "The job waited in the queue longer than its ttl_seconds.")
            .ConfigureAwait(false);
        if (expired)
        {
            await DeleteBlobsAsync(id).ConfigureAwait(false);
        }

        return expired;
    }

    /// <summary>Running → failed, only while <paramref name="workerId"/> still holds the job (no redelivery started it elsewhere).</summary>
    public async Task<bool> FailLostAsync(string id, string workerId, string code, string message)
    {
        var failed = await FinishAsync(id, JobStatuses.Failed, JobStatuses.Running, null, null, code, message, workerId).ConfigureAwait(false);
        if (failed)
        {
            await DeleteBlobsAsync(id).ConfigureAwait(false);
        }

        return failed;
    }

    /// <summary>
    /// Queued or running → failed because its message was dead-lettered; the input is kept, so an
    /// operator can requeue the job (<see cref="RequeueAsync"/>) while it is retained.
    /// </summary>
    public Task<bool> FailDeadLetteredAsync(string id, string code, string message) =>
        FinishAsync(id, JobStatuses.Failed, $"{JobStatuses.Queued} {JobStatuses.Running}", null, null, code, message, keepInput: true);

    /// <summary>Failed (a dead-lettered or lost job) → queued again, for an operator; the caller sends its message again.</summary>
    public async Task<RequeueOutcome> RequeueAsync(string id)
    {
        var reply = (string?)await EvaluateAsync(RequeueScript, Args(id) with
        {
            // The job lives on as long as a new one would.
            statusRetention = (long)(_options.InputRetention + _options.StatusRetention).TotalSeconds,
        }).ConfigureAwait(false);
        return reply switch
        {
            "ok" => RequeueOutcome.Requeued,
            "no_input" => RequeueOutcome.InputGone,
            "missing" or null => RequeueOutcome.Missing,
            _ => RequeueOutcome.NotFailed,
        };
    }

    private async Task<bool> FinishAsync(
        string id, string status, string allowedFrom, long? executionMs, string? outputJson, string? code, string? message,
        string? workerId = null, bool keepInput = false)
    {
        var reply = (string?)await EvaluateAsync(FinishScript, Args(id) with
        {
            status = status,
            allowedFrom = allowedFrom,
            executionMs = executionMs?.ToString(CultureInfo.InvariantCulture) ?? string.Empty,
            output = outputJson ?? string.Empty,
            errorCode = code ?? string.Empty,
            errorMessage = message ?? string.Empty,
            holder = workerId ?? string.Empty,
            keepInput = keepInput ? "1" : "0",
        }).ConfigureAwait(false);
        return reply == "ok";
    }

    private Task<RedisResult> EvaluateAsync(RedisScript script, ScriptArgs args) => script.EvaluateAsync(_db, args);

    /// <summary>The keys and arguments every script may name, for job <paramref name="id"/> now.</summary>
    private ScriptArgs Args(string id)
    {
        var shard = ShardOf(id);
        return new()
        {
            job = JobKey(id),
            input = InputKey(id),
            result = ResultKey(id),
            ledger = LedgerStream(shard),
            events = EventStream(shard),
            queuedByExpiry = QueuedByExpiry(shard),
            queuedByModel = QueuedByModel(shard),
            runningJobs = RunningJobs(shard),
            cacheEntries = CacheEntries(shard),
            cacheIndex = CacheIndex(shard),
            cacheBytes = CacheBytes(shard),
            cacheFlights = CacheFlights(shard),
            cacheLimits = CacheLimits(shard),
            cacheReleased = CacheReleased(shard),
            id = id,
            channel = ChangedChannel(id).ToString(),
            cancelChannel = CancelChannel.ToString(),
            now = clock.GetUtcNow().ToUnixTimeMilliseconds(),
            streamCap = StreamMaxLength,
            statusRetention = (long)_options.StatusRetention.TotalSeconds,
            resultRetention = (long)_options.Retention.TotalSeconds,
        };
    }

    /// <summary>
    /// The named parameters of the scripts (<c>@job</c>, <c>@now</c>, …): members of type
    /// <see cref="RedisKey"/> are passed as KEYS, so every key a script touches is declared; the
    /// rest as ARGV. Lower-case to match the names in the Lua text.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Style", "IDE1006:Naming Styles", Justification = "Named as the Lua scripts name them.")]
    private sealed record ScriptArgs
    {
        public RedisKey job { get; init; }
        public RedisKey input { get; init; }
        public RedisKey result { get; init; }
        public RedisKey ledger { get; init; }
        public RedisKey events { get; init; }
        public RedisKey queuedByExpiry { get; init; }
        public RedisKey queuedByModel { get; init; }
        public RedisKey runningJobs { get; init; }
        public RedisKey cacheEntries { get; init; }
        public RedisKey cacheIndex { get; init; }
        public RedisKey cacheBytes { get; init; }
        public RedisKey cacheFlights { get; init; }
        public RedisKey cacheLimits { get; init; }
        public RedisKey cacheReleased { get; init; }
        public string id { get; init; } = string.Empty;
        public string channel { get; init; } = string.Empty;
        public string cancelChannel { get; init; } = string.Empty;
        public long now { get; init; }
        public long streamCap { get; init; }
        public long statusRetention { get; init; }
        public long resultRetention { get; init; }
        public string worker { get; init; } = string.Empty;
        public string progress { get; init; } = string.Empty;
        public string status { get; init; } = string.Empty;
        public string allowedFrom { get; init; } = string.Empty;
        public string executionMs { get; init; } = string.Empty;
        public string output { get; init; } = string.Empty;
        public string errorCode { get; init; } = string.Empty;
        public string errorMessage { get; init; } = string.Empty;
        public string holder { get; init; } = string.Empty;
        public string keepInput { get; init; } = "0";
        public string fields { get; init; } = "[]";
        public string followerFields { get; init; } = "[]";
        public string cacheKey { get; init; } = string.Empty;
        public byte[] cacheKeyStored { get; init; } = [];
        public long cacheTtlMs { get; init; }
        public long cacheMaxBytes { get; init; }
        public long cacheMaxEntry { get; init; }
        public string follow { get; init; } = "0";
        public string expiresAt { get; init; } = string.Empty;
        public byte[] inputBytes { get; init; } = [];
        public string inputKeptUntil { get; init; } = string.Empty;
        public string inputBlob { get; init; } = string.Empty;
        public long jobRetention { get; init; }
        public long inputRetention { get; init; }
    }

    private static JobRecord Read(string id, HashEntry[] entries, string? outputJson)
    {
        var map = entries.ToDictionary(e => e.Name.ToString(), e => e.Value);
        string? Str(string name) => map.TryGetValue(name, out var v) && !v.IsNullOrEmpty ? v.ToString() : null;
        long? Long(string name) => Str(name) is { } s ? long.Parse(s, CultureInfo.InvariantCulture) : null;
        DateTimeOffset? Time(string name) => Long(name) is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;

        return new JobRecord
        {
            Id = Str("id") ?? id, // the key names it; jobs stored before that also hold it
            TenantId = Str("tenant") ?? string.Empty,
            Status = Str("status") ?? JobStatuses.Queued,
            Pipeline = Str("pipeline") ?? string.Empty,
            Model = Str("model") ?? string.Empty,
            Priority = Contracts.JobPriorities.OrNormal(Str("priority")),
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
            TraceParent = Str("traceparent"),
            RequestedModel = Str("requested_model"),
            RoutingKey = Str("routing_key"),
            Cache = Str("cache") ?? (Str("cache_key") is null ? null : "miss"), // a queued or computed job of the cache
            SavedMs = Long("saved_ms"),
            CacheLeader = Str("leader"),
        };
    }
}

public enum RequeueOutcome
{
    Requeued,
    NotFailed,
    InputGone,
    Missing,
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

/// <summary>
/// How a job takes part in the result cache (computed by the API at submit): its key (SHA-256 hex;
/// its shard is the job's), how long an entry serves, the shard's byte bound and the largest entry,
/// and whether a job may follow another computing the same key.
/// </summary>
public sealed record CacheTicket(string Key, TimeSpan Ttl, long MaxShardBytes, long MaxEntryBytes, bool SingleFlight);

/// <summary>What <see cref="RedisJobStore.CreateCachedAsync"/> made.</summary>
public abstract record CachedCreate
{
    private CachedCreate()
    {
    }

    /// <summary>Succeeded at once from the cache; <paramref name="SavedMs"/> is the execution time of the job that computed it.</summary>
    public sealed record Hit(long SavedMs) : CachedCreate;

    /// <summary>Queued behind <paramref name="LeaderId"/>, which computes the same output; no message of its own.</summary>
    public sealed record Follow(string LeaderId) : CachedCreate;

    /// <summary>Queued, leading its key's flight: the caller sends its message.</summary>
    public sealed record Lead : CachedCreate;
}

[System.Text.Json.Serialization.JsonSerializable(typeof(List<string>))]
internal sealed partial class CoreJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
