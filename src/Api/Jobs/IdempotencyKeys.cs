using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace Async.Serving.Api.Jobs;

/// <summary>
/// <c>Idempotency-Key</c>, per tenant, kept 24 h: the first request with a key claims it (SET NX)
/// and records its job; a repeat with the same fingerprint gets that job, a repeat with another
/// fingerprint is a mismatch. Concurrent duplicates wait for the first to record its job, so
/// they make one job between them.
/// </summary>
internal sealed class IdempotencyKeys(IConnectionMultiplexer redis)
{
    public const int MaxKeyLength = 255;
    private const string Pending = "pending";
    private static readonly TimeSpan Lifetime = TimeSpan.FromHours(24);
    private static readonly TimeSpan PendingWait = TimeSpan.FromSeconds(15);

    private readonly IDatabase _db = redis.GetDatabase();

    /// <summary>What a submit with a key found.</summary>
    public abstract record Claim
    {
        /// <summary>The key is this request's: submit, then <see cref="CompleteAsync"/> or <see cref="ReleaseAsync"/>.</summary>
        public sealed record Owned : Claim;

        public sealed record Replay(string JobId) : Claim;

        public sealed record Mismatch : Claim;
    }

    /// <summary>1 to <see cref="MaxKeyLength"/> characters from space to <c>~</c>: what a header value may safely hold.</summary>
    public static bool IsWellFormed(string key) =>
        key.Length is > 0 and <= MaxKeyLength && key.All(c => c is >= ' ' and <= '~');

    /// <summary>A fingerprint of everything that makes a submission what it is (the input by its hash).</summary>
    public static string Fingerprint(Submission s)
    {
        var text = string.Join('\n',
            s.Pipeline, s.Model.Id, Convert.ToHexString(SHA256.HashData(s.Input)), s.ParamsJson, s.TtlSeconds, s.TimeoutSeconds, s.MetadataJson);
        if (s.Webhook is not null)
        {
            text += "\n" + s.Webhook.ToJson(); // only then, so keys taken before webhooks existed keep their fingerprint
        }

        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    public async Task<Claim> ClaimAsync(string tenantId, string key, string fingerprint, CancellationToken cancellationToken)
    {
        var redisKey = RedisKeyOf(tenantId, key);
        var deadline = DateTime.UtcNow + PendingWait;
        while (true)
        {
            if (await _db.StringSetAsync(redisKey, $"{fingerprint}:{Pending}", Lifetime, When.NotExists).ConfigureAwait(false))
            {
                return new Claim.Owned();
            }

            var value = (string?)await _db.StringGetAsync(redisKey).ConfigureAwait(false);
            if (value is not null)
            {
                var separator = value.IndexOf(':', StringComparison.Ordinal);
                if (value[..separator] != fingerprint)
                {
                    return new Claim.Mismatch();
                }

                var jobId = value[(separator + 1)..];
                if (jobId != Pending)
                {
                    return new Claim.Replay(jobId);
                }
            }

            // The first request with this key is still submitting (or it just failed and released it).
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("The first request with this Idempotency-Key did not finish.");
            }

            await Task.Delay(25, cancellationToken).ConfigureAwait(false);
        }
    }

    public Task CompleteAsync(string tenantId, string key, string fingerprint, string jobId) =>
        _db.StringSetAsync(RedisKeyOf(tenantId, key), $"{fingerprint}:{jobId}", Lifetime);

    public Task ReleaseAsync(string tenantId, string key) => _db.KeyDeleteAsync(RedisKeyOf(tenantId, key));

    private static RedisKey RedisKeyOf(string tenantId, string key) =>
        $"idem:{tenantId}:{Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))}";
}
