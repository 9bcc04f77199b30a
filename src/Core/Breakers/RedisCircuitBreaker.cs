using System.Globalization;
using Async.Serving.Redis;
using StackExchange.Redis;

namespace Async.Serving.Breakers;

/// <summary>The state of one breaker; the numbers are the values of the <c>serving_*_breaker_state</c> gauges.</summary>
public enum BreakerState
{
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

/// <summary>What a caller may do now: send (closed), send as the one probe (half-open), or not send (open, or a probe is out).</summary>
public enum BreakerDecision
{
    Allow,
    Probe,
    Reject,
}

/// <summary>The answer of <see cref="RedisCircuitBreaker.AcquireAsync"/>; <see cref="RetryAt"/> is when a rejected caller may ask again.</summary>
public readonly record struct BreakerPermit(BreakerDecision Decision, DateTimeOffset? RetryAt, BreakerState? EnteredState)
{
    public static readonly BreakerPermit Allowed = new(BreakerDecision.Allow, null, null);
}

/// <summary>When a breaker opens: <see cref="Threshold"/> consecutive failures, the first no longer ago than <see cref="Window"/>; it stays open for <see cref="CoolDown"/>.</summary>
public readonly record struct BreakerPolicy(int Threshold, TimeSpan Window, TimeSpan CoolDown);

/// <summary>One breaker that is not closed (or closed with failures counted), as operators see it.</summary>
/// <param name="Held">The first members of the breaker's held set (work waiting for it to close), for breakers that hold work.</param>
/// <param name="HeldCount">How many members the held set has.</param>
public sealed record BreakerSnapshot(
    string Name,
    BreakerState State,
    int Failures,
    DateTimeOffset? OpenedAt,
    DateTimeOffset? OpenUntil,
    DateTimeOffset? ProbeUntil,
    string? LastError,
    IReadOnlyList<string> Held,
    long HeldCount);

/// <summary>
/// A family of circuit breakers (webhook hosts, model versions) whose state lives in Redis, so every
/// API replica and worker reads and changes the same breaker. Each change is one Lua script over the
/// breaker's hash, the family's index of breakers that are not closed, and the breaker's held set;
/// every key is declared and shares the family's hash tag, so the scripts run on a Redis Cluster too.
/// </summary>
/// <remarks>
/// Closed: calls go; <see cref="BreakerPolicy.Threshold"/> consecutive failures within
/// <see cref="BreakerPolicy.Window"/> open it. Open: nothing goes until <see cref="BreakerPolicy.CoolDown"/>
/// has passed; then the first caller becomes the probe (half-open) and holds a lease for its call, and
/// everyone else is rejected until the probe reports: success closes, failure opens again for another
/// cool-down. A probe that never reports (its process died) loses its lease, and the next caller probes.
/// A healthy breaker has no keys at all: a success while closed deletes its failure count.
/// </remarks>
public sealed class RedisCircuitBreaker(IConnectionMultiplexer redis, string family, TimeProvider clock)
{
    private const string Shared = """
        local function n(field) return tonumber(redis.call('HGET', @breaker, field) or '0') end
        local function open(error)
          redis.call('HSET', @breaker, 'state', 'open', 'opened_at', @now, 'open_until', @now + @coolDownMs, 'last_error', error)
          redis.call('HDEL', @breaker, 'probe_until')
          redis.call('PERSIST', @breaker)
          redis.call('ZADD', @index, @now, @name)
        end
        -- The held members, taken out of the set (at most 5,000 at once: the rest run when they come due).
        local function release()
          local held = redis.call('ZRANGE', @held, 0, 4999)
          redis.call('ZREMRANGEBYRANK', @held, 0, 4999)
          return held
        end

        """;

    // Returns {decision, retryAtMs, enteredState}; enteredState is '' when nothing changed.
    private static readonly RedisScript AcquireScript = RedisScript.Prepare(Shared + """
        local state = redis.call('HGET', @breaker, 'state') or 'closed'
        if state == 'closed' then return {'allow', '0', ''} end
        if state == 'open' then
          local openUntil = n('open_until')
          if tonumber(@now) < openUntil then return {'reject', tostring(openUntil), ''} end
          redis.call('HSET', @breaker, 'state', 'half_open', 'probe_until', @now + @leaseMs)
          redis.call('ZADD', @index, @now, @name)
          return {'probe', '0', 'half_open'}
        end
        local probeUntil = n('probe_until')
        if tonumber(@now) < probeUntil then return {'reject', tostring(probeUntil), ''} end
        redis.call('HSET', @breaker, 'probe_until', @now + @leaseMs)
        return {'probe', '0', ''}
        """);

    // Returns the state entered ('' for none) and, when it closed, the held members it released.
    private static readonly RedisScript ReportScript = RedisScript.Prepare(Shared + """
        local state = redis.call('HGET', @breaker, 'state') or 'closed'
        if @success == '1' then
          if state == 'open' then return {''} end
          redis.call('DEL', @breaker)
          if state == 'closed' then return {''} end
          redis.call('ZREM', @index, @name)
          return {'closed', unpack(release())}
        end
        if state == 'open' then return {''} end
        if state == 'half_open' then
          if @probe ~= '1' then return {''} end
          open(@error)
          return {'open'}
        end
        local failures, since = n('failures'), n('window_start')
        if failures == 0 or tonumber(@now) - since > tonumber(@windowMs) then failures, since = 0, @now end
        failures = failures + 1
        redis.call('HSET', @breaker, 'failures', failures, 'window_start', since, 'last_error', @error)
        if failures >= tonumber(@threshold) then
          open(@error)
          return {'open'}
        end
        redis.call('PEXPIRE', @breaker, @windowMs)
        return {''}
        """);

    // An operator's close: whatever the state; returns whether it was not closed, and the held members released.
    private static readonly RedisScript CloseScript = RedisScript.Prepare(Shared + """
        local state = redis.call('HGET', @breaker, 'state') or 'closed'
        redis.call('DEL', @breaker)
        redis.call('ZREM', @index, @name)
        return {state, unpack(release())}
        """);

    private readonly IDatabase _db = redis.GetDatabase();

    /// <summary>The hash tag every key of the family shares (one Redis Cluster slot: the family's state is small).</summary>
    private string Tag => "{breakers:" + family + "}";

    private RedisKey BreakerKey(string name) => Tag + ":state:" + name;

    private RedisKey HeldKey(string name) => Tag + ":held:" + name;

    private RedisKey IndexKey => Tag + ":index";

    /// <summary>
    /// The breaker's state field, by one <c>HGET</c>: <see cref="IsClosed"/> of it means <see cref="AcquireAsync"/>
    /// would allow the call without running its script. Changes nothing, so it may be read ahead of time.
    /// </summary>
    public Task<RedisValue> ReadStateAsync(string name) => _db.HashGetAsync(BreakerKey(name), "state");

    /// <summary>Whether a state read by <see cref="ReadStateAsync"/> is closed (no hash: never failed, or closed since).</summary>
    public static bool IsClosed(RedisValue state) => state.IsNull || state == "closed";

    /// <summary>Whether a call to <paramref name="name"/> may go now; a probe holds a lease of <paramref name="probeLease"/> for its call.</summary>
    /// <remarks>
    /// A closed breaker (nearly always) is answered by one <c>HGET</c> of its state, as the script would
    /// answer it: only an open or half-open breaker runs the script, whose decision may change the state.
    /// </remarks>
    public async Task<BreakerPermit> AcquireAsync(string name, TimeSpan probeLease, CancellationToken cancellationToken)
    {
        if (IsClosed(await ReadStateAsync(name).WaitAsync(cancellationToken).ConfigureAwait(false)))
        {
            return BreakerPermit.Allowed;
        }

        var reply = (RedisResult[])(await AcquireScript.EvaluateAsync(_db, Args(name) with { leaseMs = (long)probeLease.TotalMilliseconds })
            .WaitAsync(cancellationToken).ConfigureAwait(false))!;
        var retryAt = long.Parse((string)reply[1]!, CultureInfo.InvariantCulture);
        return new BreakerPermit(
            (string)reply[0]! switch { "allow" => BreakerDecision.Allow, "probe" => BreakerDecision.Probe, _ => BreakerDecision.Reject },
            retryAt > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(retryAt) : null,
            ParseState((string?)reply[2]));
    }

    /// <summary>
    /// Reports the outcome of a call that went. Returns the state the breaker entered (null: none) and,
    /// when it closed, the members of its held set, released (the caller resumes them).
    /// </summary>
    public async Task<(BreakerState? Entered, IReadOnlyList<string> Released)> ReportAsync(
        string name, bool success, bool probe, BreakerPolicy policy, string? error, CancellationToken cancellationToken)
    {
        var reply = (RedisResult[])(await ReportScript.EvaluateAsync(_db, Args(name) with
        {
            success = success ? "1" : "0",
            probe = probe ? "1" : "0",
            threshold = policy.Threshold,
            windowMs = (long)policy.Window.TotalMilliseconds,
            coolDownMs = (long)policy.CoolDown.TotalMilliseconds,
            error = error is { Length: > 500 } ? error[..500] : error ?? string.Empty,
        }).WaitAsync(cancellationToken).ConfigureAwait(false))!;
        return (ParseState((string?)reply[0]), [.. reply.Skip(1).Select(r => (string)r!)]);
    }

    /// <summary>Closes the breaker now, whatever its state (an operator's decision). Returns whether it was not closed, and the held members released.</summary>
    public async Task<(bool WasOpen, IReadOnlyList<string> Released)> CloseAsync(string name, CancellationToken cancellationToken)
    {
        var reply = (RedisResult[])(await CloseScript.EvaluateAsync(_db, Args(name)).WaitAsync(cancellationToken).ConfigureAwait(false))!;
        return ((string)reply[0]! != "closed", [.. reply.Skip(1).Select(r => (string)r!)]);
    }

    /// <summary>Adds <paramref name="member"/> (a held piece of work, due at <paramref name="due"/>) to the breaker's held set.</summary>
    public Task HoldAsync(string name, string member, DateTimeOffset due, CancellationToken cancellationToken) =>
        _db.SortedSetAddAsync(HeldKey(name), member, due.ToUnixTimeMilliseconds()).WaitAsync(cancellationToken);

    /// <summary>Removes <paramref name="member"/> from the held set (it runs now).</summary>
    public Task UnholdAsync(string name, string member, CancellationToken cancellationToken) =>
        _db.SortedSetRemoveAsync(HeldKey(name), member).WaitAsync(cancellationToken);

    /// <summary>The breaker of <paramref name="name"/>; a closed one without failures reads closed with zeros.</summary>
    public async Task<BreakerSnapshot> GetAsync(string name, int heldLimit, CancellationToken cancellationToken)
    {
        var batch = _db.CreateBatch();
        var hash = batch.HashGetAllAsync(BreakerKey(name));
        var held = batch.SortedSetRangeByRankAsync(HeldKey(name), 0, heldLimit - 1);
        var heldCount = batch.SortedSetLengthAsync(HeldKey(name));
        batch.Execute();
        await Task.WhenAll(hash, held, heldCount).WaitAsync(cancellationToken).ConfigureAwait(false);
        return Read(name, await hash.ConfigureAwait(false), await held.ConfigureAwait(false), await heldCount.ConfigureAwait(false));
    }

    /// <summary>
    /// The breaker's state and, when open, until when: one HMGET of two fields, for a check on a hot
    /// path (every submit) that needs neither the failure count nor the held set of <see cref="GetAsync"/>.
    /// </summary>
    public async Task<(BreakerState State, DateTimeOffset? OpenUntil)> GetStateAsync(string name, CancellationToken cancellationToken)
    {
        var fields = await _db.HashGetAsync(BreakerKey(name), StateFields).WaitAsync(cancellationToken).ConfigureAwait(false);
        var openUntil = fields[1].IsNullOrEmpty ? (DateTimeOffset?)null
            : DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(fields[1].ToString(), CultureInfo.InvariantCulture));
        return (ParseState(fields[0].IsNullOrEmpty ? null : fields[0].ToString()) ?? BreakerState.Closed, openUntil);
    }

    private static readonly RedisValue[] StateFields = ["state", "open_until"];

    /// <summary>Every breaker of the family that is open or half-open, most recently changed first, at most <paramref name="limit"/>.</summary>
    public async Task<IReadOnlyList<BreakerSnapshot>> NotClosedAsync(int limit, int heldLimit, CancellationToken cancellationToken)
    {
        var names = await _db.SortedSetRangeByRankAsync(IndexKey, 0, limit - 1, Order.Descending).WaitAsync(cancellationToken).ConfigureAwait(false);
        var snapshots = await Task.WhenAll(names.Select(n => GetAsync(n!, heldLimit, cancellationToken))).ConfigureAwait(false);
        return [.. snapshots.Where(s => s.State != BreakerState.Closed)];
    }

    private static BreakerSnapshot Read(string name, HashEntry[] entries, RedisValue[] held, long heldCount)
    {
        var map = entries.ToDictionary(e => e.Name.ToString(), e => e.Value);
        string? Str(string field) => map.TryGetValue(field, out var v) && !v.IsNullOrEmpty ? v.ToString() : null;
        DateTimeOffset? Time(string field) => Str(field) is { } s ? DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(s, CultureInfo.InvariantCulture)) : null;
        return new BreakerSnapshot(
            name,
            ParseState(Str("state")) ?? BreakerState.Closed,
            Str("failures") is { } f ? int.Parse(f, CultureInfo.InvariantCulture) : 0,
            Time("opened_at"),
            Time("open_until"),
            Time("probe_until"),
            Str("last_error"),
            [.. held.Select(h => h.ToString())],
            heldCount);
    }

    private static BreakerState? ParseState(string? state) => state switch
    {
        "open" => BreakerState.Open,
        "half_open" => BreakerState.HalfOpen,
        "closed" => BreakerState.Closed,
        _ => null,
    };

    /// <summary>The breaker's keys and the arguments every script may name, now.</summary>
    private ScriptArgs Args(string name) => new()
    {
        breaker = BreakerKey(name),
        index = IndexKey,
        held = HeldKey(name),
        name = name,
        now = clock.GetUtcNow().ToUnixTimeMilliseconds(),
    };

    /// <summary>
    /// The named parameters of the scripts: members of type <see cref="RedisKey"/> are passed as KEYS,
    /// the rest as ARGV. Lower-case to match the names in the Lua text.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Style", "IDE1006:Naming Styles", Justification = "Named as the Lua scripts name them.")]
    private sealed record ScriptArgs
    {
        public RedisKey breaker { get; init; }
        public RedisKey index { get; init; }
        public RedisKey held { get; init; }
        public string name { get; init; } = string.Empty;
        public long now { get; init; }
        public long leaseMs { get; init; }
        public string success { get; init; } = "0";
        public string probe { get; init; } = "0";
        public long threshold { get; init; }
        public long windowMs { get; init; }
        public long coolDownMs { get; init; }
        public string error { get; init; } = string.Empty;
    }
}
