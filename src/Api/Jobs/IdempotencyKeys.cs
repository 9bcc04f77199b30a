using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace Async.Serving.Api.Jobs;

/// <summary>What an <c>Idempotency-Key</c> makes: a key given to <c>POST /v1/jobs</c> and the same key given to <c>POST /v1/batches</c> are two keys.</summary>
internal enum IdempotencyScope
{
    Jobs,
    Batches,
}

/// <summary>
/// <c>Idempotency-Key</c>, per tenant and <see cref="IdempotencyScope"/>, kept 24 h: the first request with a key claims it (SET NX)
/// and records its job as soon as the job is stored, before its message is sent, so that no
/// failure after the send can leave the key free for a second job; a repeat with the same
/// fingerprint gets that job, a repeat with another fingerprint is a mismatch. Concurrent
/// duplicates wait for the first to record its job, so they make one job between them. Batches
/// (<see cref="IdempotencyScope.Batches"/>) work the same way with a batch in place of the job.
/// </summary>
internal sealed class IdempotencyKeys(IConnectionMultiplexer redis, TimeProvider clock)
{
    private const string Pending = "pending";
    private static readonly TimeSpan Lifetime = TimeSpan.FromHours(24);
    private static readonly TimeSpan PendingWait = TimeSpan.FromSeconds(15);

    /// <summary>Longer than any submit can hold a claim (the publish is bounded by seconds): a claim older than this was abandoned.</summary>
    public static readonly TimeSpan StalePending = TimeSpan.FromMinutes(1);

    // KEYS[1]: the key; ARGV: the value found, the new value, its lifetime (ms). Replaces only what was read.
    private const string TakeOver = """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
        return 1
        """;

    private readonly IDatabase _db = redis.GetDatabase();

    /// <summary>What a submit with a key found.</summary>
    public abstract record Claim
    {
        /// <summary>The key is this request's: submit, then <see cref="CompleteAsync"/> or <see cref="ReleaseAsync"/>.</summary>
        public sealed record Owned : Claim;

        public sealed record Replay(string JobId) : Claim;

        public sealed record Mismatch : Claim;
    }

    /// <summary>
    /// A fingerprint of everything that makes a submission what it is (the input by its hash), as the
    /// client sent it: the <c>model</c> it named, not the version that routing (or a new newest version)
    /// makes of a bare name, so that a retry is never a mismatch for a choice the client did not make.
    /// </summary>
    public static string Fingerprint(Submission s)
    {
        var text = string.Join('\n',
            s.Pipeline, s.RequestedModel ?? s.Model.Id, Convert.ToHexString(s.Input.Sha256), s.ParamsJson, s.TtlSeconds, s.TimeoutSeconds, s.MetadataJson);
        if (s.Webhook is not null)
        {
            text += "\n" + s.Webhook.ToJson(); // only then, so keys taken before webhooks existed keep their fingerprint
        }

        if (s.RoutingKey is not null)
        {
            text += "\nrouting_key:" + s.RoutingKey;
        }

        if (s.Priority is not null)
        {
            text += "\npriority:" + s.Priority; // as given, not the tenant's default: the same request stays the same
        }

        if (!s.Cache)
        {
            text += "\ncache:false"; // likewise: only an opt-out changes the fingerprint
        }

        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>
    /// Claims the key, or finds what holds it. A key left behind by a request that cannot still be
    /// running (pending for longer than <see cref="StalePending"/>: its API stopped mid-submit) or
    /// pointing at a job that does not exist (its publish failed and the release did not reach
    /// Redis) is taken over, compare-and-set, so a client's retry is never refused for it.
    /// </summary>
    public async Task<Claim> ClaimAsync(
        IdempotencyScope scope, string tenantId, string key, string fingerprint, Func<string, Task<bool>> jobExists, CancellationToken cancellationToken)
    {
        var redisKey = RedisKeyOf(scope, tenantId, key);
        var deadline = DateTime.UtcNow + PendingWait;
        while (true)
        {
            var mine = PendingValue(fingerprint);
            if (await _db.StringSetAsync(redisKey, mine, Lifetime, When.NotExists).ConfigureAwait(false))
            {
                return new Claim.Owned();
            }

            var value = (string?)await _db.StringGetAsync(redisKey).ConfigureAwait(false);
            if (value is not null)
            {
                var parts = value.Split(':');
                if (parts[0] != fingerprint)
                {
                    return new Claim.Mismatch();
                }

                var stale = parts[1] == Pending
                    ? parts.Length < 3 || !long.TryParse(parts[2], out var since) || clock.GetUtcNow() - DateTimeOffset.FromUnixTimeMilliseconds(since) > StalePending
                    : !await jobExists(parts[1]).ConfigureAwait(false);
                if (!stale && parts[1] != Pending)
                {
                    return new Claim.Replay(parts[1]);
                }

                if (stale && (bool)await _db.ScriptEvaluateAsync(TakeOver, [redisKey], [value, mine, (long)Lifetime.TotalMilliseconds]).ConfigureAwait(false))
                {
                    return new Claim.Owned();
                }
            }

            // The first request with this key is still submitting (or it just failed and released it).
            if (DateTime.UtcNow > deadline)
            {
                throw new IdempotencyKeyBusyException();
            }

            await Task.Delay(25, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Points the claimed key at its job (or batch): called once the job is stored, before its message is sent.</summary>
    public Task CompleteAsync(IdempotencyScope scope, string tenantId, string key, string fingerprint, string jobId) =>
        _db.StringSetAsync(RedisKeyOf(scope, tenantId, key), $"{fingerprint}:{jobId}", Lifetime);

    public Task ReleaseAsync(IdempotencyScope scope, string tenantId, string key) => _db.KeyDeleteAsync(RedisKeyOf(scope, tenantId, key));

    private string PendingValue(string fingerprint) =>
        $"{fingerprint}:{Pending}:{clock.GetUtcNow().ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)}";

    // Jobs keep the name they had before batches took keys, so keys taken then still hold. No job key
    // starts with "idem-batch:", whatever the tenant's id.
    private static RedisKey RedisKeyOf(IdempotencyScope scope, string tenantId, string key) =>
        $"{(scope == IdempotencyScope.Batches ? "idem-batch" : "idem")}:{tenantId}:{Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))}";
}

/// <summary>The first request with this key is still submitting after <c>PendingWait</c>: the client should retry.</summary>
internal sealed class IdempotencyKeyBusyException() : Exception("The first request with this Idempotency-Key is still being processed.");
