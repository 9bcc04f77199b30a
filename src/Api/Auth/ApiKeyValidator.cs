using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Auth;

/// <summary>Who a valid key speaks for. <see cref="KeyId"/> partitions the rate limit.</summary>
public sealed record ApiKeyIdentity(string TenantId, string KeyId);

/// <summary>
/// Checks a presented key: the development key from configuration first, then the keys in
/// PostgreSQL through a short cache, so that a busy client does not cost a query per request.
/// </summary>
internal sealed partial class ApiKeyValidator(
    ApiKeyStore store,
    IOptions<ApiKeyOptions> options,
    TimeProvider clock,
    ILogger<ApiKeyValidator> logger) : IDisposable
{
    public const string DevelopmentKeyId = "development";

    // Its own bounded cache: random keys sent by someone probing cannot grow it without limit
    // (entries beyond the limit are simply not cached, and cost a query each).
    private readonly MemoryCache cache = new(new MemoryCacheOptions { SizeLimit = 10_000 });

    public async Task<ApiKeyIdentity?> ValidateAsync(string key, CancellationToken cancellationToken)
    {
        if (key.Length == 0)
        {
            return null;
        }

        var hash = ApiKeyStore.Hash(key);
        if (IsDevelopmentKey(hash))
        {
            return new ApiKeyIdentity(options.Value.DevelopmentTenant, DevelopmentKeyId);
        }

        if (!ApiKeyStore.IsWellFormed(key))
        {
            return null;
        }

        var record = await FindAsync(hash, cancellationToken).ConfigureAwait(false);
        if (record is null)
        {
            return null;
        }

        // Checked on every request, cached or not, so expiry is exact; revocation waits for the cache.
        if (!record.IsValidAt(clock.GetUtcNow()))
        {
            LogRejected(record.Id, record.TenantId, record.RevokedAt is null ? "expired" : "revoked");
            return null;
        }

        return new ApiKeyIdentity(record.TenantId, record.Id.ToString("N"));
    }

    public void Dispose() => cache.Dispose();

    private bool IsDevelopmentKey(byte[] hash)
    {
        var development = options.Value.DevelopmentKey;
        if (string.IsNullOrEmpty(development))
        {
            return false;
        }

        // Compare digests in constant time, so neither the key nor its length leaks through timing.
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(development));
        return CryptographicOperations.FixedTimeEquals(hash, expected);
    }

    private async Task<ApiKeyRecord?> FindAsync(byte[] hash, CancellationToken cancellationToken)
    {
        var duration = options.Value.KeyCacheDuration;
        var cacheKey = Convert.ToHexString(hash);
        if (duration > TimeSpan.Zero && cache.TryGetValue(cacheKey, out Lookup? cached) && cached is not null)
        {
            return cached.Record;
        }

        var record = await store.FindAsync(hash, cancellationToken).ConfigureAwait(false);
        if (duration > TimeSpan.Zero)
        {
            // Unknown keys are remembered too, so a client retrying with a wrong key is not a query each time.
            cache.Set(cacheKey, new Lookup(record), new MemoryCacheEntryOptions { AbsoluteExpirationRelativeToNow = duration, Size = 1 });
        }

        return record;
    }

    private sealed record Lookup(ApiKeyRecord? Record);

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "API key {KeyId} of tenant {TenantId} refused: {Reason}")]
    private partial void LogRejected(Guid keyId, string tenantId, string reason);
}
