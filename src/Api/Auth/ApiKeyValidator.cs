using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using Async.Serving.Api.Errors;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Async.Serving.Api.Auth;

/// <summary>Who a valid key speaks for. <see cref="KeyId"/> partitions the rate limit; <see cref="IsAdmin"/> opens the key management routes.</summary>
public sealed record ApiKeyIdentity(string TenantId, string KeyId, bool IsAdmin);

/// <summary>
/// A key that could not be checked: PostgreSQL cannot be reached (503 <c>auth_unavailable</c>), or
/// the client has used up its lookups (429 <c>rate_limited</c>). Answered by the authentication
/// handler's challenge, with <c>Retry-After</c>.
/// </summary>
public sealed class ApiKeyCheckRefusedException(int status, string code, TimeSpan retryAfter, string message) : Exception(message)
{
    public int Status { get; } = status;

    public string Code { get; } = code;

    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// Checks a presented key: the development key from configuration first, then the keys in
/// PostgreSQL through a short cache, so that a busy client does not cost a query per request.
/// A query is what a stranger can make the API do without a key, so each client address has a
/// budget of them (<see cref="ApiKeyOptions.LookupsPerClient"/>) and all clients together a
/// concurrency cap; a key verified before PostgreSQL went away is still served for
/// <see cref="ApiKeyOptions.StaleKeyLifetime"/>.
/// </summary>
internal sealed partial class ApiKeyValidator : IDisposable
{
    public const string DevelopmentKeyId = "development";

    /// <summary>The <c>Retry-After</c> of an <c>auth_unavailable</c> answer.</summary>
    public static readonly TimeSpan UnavailableRetryAfter = TimeSpan.FromSeconds(5);

    private static readonly Prometheus.Counter Lookups = Prometheus.Metrics.CreateCounter(
        "serving_api_key_lookups_total", "API key lookups that reached PostgreSQL, by outcome (found, not_found, error).",
        new Prometheus.CounterConfiguration { LabelNames = ["outcome"] });

    private static readonly Prometheus.Counter Refused = Prometheus.Metrics.CreateCounter(
        "serving_api_key_checks_refused_total", "API keys not checked: client over its lookup budget (limited), PostgreSQL unreachable (unavailable).",
        new Prometheus.CounterConfiguration { LabelNames = ["reason"] });

    private static readonly Prometheus.Counter StaleServed = Prometheus.Metrics.CreateCounter(
        "serving_api_key_stale_served_total", "Requests let in on a key verified earlier, because PostgreSQL could not be asked.");

    private readonly ApiKeyStore _store;
    private readonly ApiKeyRevocations _revocations;
    private readonly ApiKeyUsage _usage;
    private readonly IOptions<ApiKeyOptions> _options;
    private readonly TimeProvider _clock;
    private readonly ILogger<ApiKeyValidator> _logger;

    // Its own bounded cache: random keys sent by someone probing cannot grow it without limit.
    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = 10_000 });
    private readonly PartitionedRateLimiter<string> _perClient;
    private readonly ConcurrencyLimiter _concurrent;

    public ApiKeyValidator(
        ApiKeyStore store,
        ApiKeyRevocations revocations,
        ApiKeyUsage usage,
        IOptions<ApiKeyOptions> options,
        TimeProvider clock,
        ILogger<ApiKeyValidator> logger)
    {
        _store = store;
        _revocations = revocations;
        _usage = usage;
        _options = options;
        _clock = clock;
        _logger = logger;
        var o = options.Value;
        _perClient = PartitionedRateLimiter.Create<string, string>(client => RateLimitPartition.GetTokenBucketLimiter(client, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = o.LookupsPerClient,
            TokensPerPeriod = 1,
            ReplenishmentPeriod = TimeSpan.FromMinutes(1) / o.LookupsPerClientPerMinute,
            AutoReplenishment = true,
            QueueLimit = 0,
        }));
        _concurrent = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = o.MaxConcurrentLookups,
            QueueLimit = o.MaxQueuedLookups,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });
    }

    /// <summary>The key's identity, or null for a key that is unknown, expired or revoked.</summary>
    /// <exception cref="ApiKeyCheckRefusedException">The key could not be checked now.</exception>
    public async Task<ApiKeyIdentity?> ValidateAsync(string key, IPAddress? client, CancellationToken cancellationToken)
    {
        if (key.Length == 0)
        {
            return null;
        }

        var hash = ApiKeyStore.Hash(key);
        if (IsDevelopmentKey(hash))
        {
            return new ApiKeyIdentity(_options.Value.DevelopmentTenant, DevelopmentKeyId, IsAdmin: true);
        }

        if (!ApiKeyStore.IsWellFormed(key))
        {
            return null;
        }

        var record = await FindAsync(hash, ClientPartition(client), cancellationToken).ConfigureAwait(false);
        if (record is null)
        {
            return null;
        }

        // Checked on every request, cached or not, so expiry is exact; a revocation through the API is
        // known at once (ApiKeyRevocations), one made in the database directly once the cache expires.
        if (!record.IsValidAt(_clock.GetUtcNow()) || _revocations.IsRevoked(record.Id))
        {
            LogRejected(record.Id, record.TenantId, record.RevokedAt is null && !_revocations.IsRevoked(record.Id) ? "expired" : "revoked");
            return null;
        }

        _usage.Record(record.Id);
        return new ApiKeyIdentity(record.TenantId, record.Id.ToString("N"), record.Admin);
    }

    public void Dispose()
    {
        _cache.Dispose();
        _perClient.Dispose();
        _concurrent.Dispose();
    }

    /// <summary>An IPv4 address, or the /64 network of an IPv6 one (a single host usually holds a whole /64).</summary>
    internal static string ClientPartition(IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }

        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new IPAddress(bytes) + "/64";
    }

    private bool IsDevelopmentKey(byte[] hash)
    {
        var development = _options.Value.DevelopmentKey;
        if (string.IsNullOrEmpty(development))
        {
            return false;
        }

        // Compare digests in constant time, so neither the key nor its length leaks through timing.
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(development));
        return CryptographicOperations.FixedTimeEquals(hash, expected);
    }

    private async Task<ApiKeyRecord?> FindAsync(byte[] hash, string client, CancellationToken cancellationToken)
    {
        var options = _options.Value;
        var now = _clock.GetUtcNow();
        var cacheKey = Convert.ToHexString(hash);
        _cache.TryGetValue(cacheKey, out Lookup? cached);
        if (cached is not null && now - cached.CheckedAt < options.KeyCacheDuration)
        {
            return cached.Record;
        }

        // Every query is charged to the client before it is made, so a stream of random keys from one
        // address costs at most its bucket, however fast it arrives.
        using (var budget = _perClient.AttemptAcquire(client))
        {
            if (!budget.IsAcquired)
            {
                Refused.WithLabels("limited").Inc();
                var wait = budget.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : TimeSpan.FromMinutes(1) / options.LookupsPerClientPerMinute;
                throw new ApiKeyCheckRefusedException(StatusCodes.Status429TooManyRequests, ApiProblems.RateLimited, wait,
                    "Too many API key lookups from this address; retry later.");
            }
        }

        ApiKeyRecord? record;
        try
        {
            record = await LookUpAsync(hash, options.LookupTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsUnavailable(ex, cancellationToken))
        {
            Lookups.WithLabels("error").Inc();
            if (cached is { Record: not null } && now - cached.CheckedAt < options.KeyCacheDuration + options.StaleKeyLifetime)
            {
                StaleServed.Inc();
                LogServedStale(cached.Record.Id, cached.Record.TenantId, ex.Message);
                return cached.Record;
            }

            Refused.WithLabels("unavailable").Inc();
            LogUnavailable(ex.GetType().Name, ex.Message);
            throw new ApiKeyCheckRefusedException(StatusCodes.Status503ServiceUnavailable, ApiProblems.AuthUnavailable, UnavailableRetryAfter,
                "The API key cannot be checked right now: the key database is unavailable. Retry later.");
        }

        Lookups.WithLabels(record is null ? "not_found" : "found").Inc();
        var entry = new MemoryCacheEntryOptions { Size = 1 };
        if (record is not null)
        {
            // Kept beyond its freshness, for outages; found keys outlive probes when the cache is full.
            entry.AbsoluteExpirationRelativeToNow = options.KeyCacheDuration + options.StaleKeyLifetime;
            entry.Priority = CacheItemPriority.High;
            _cache.Set(cacheKey, new Lookup(record, now), entry);
        }
        else if (options.KeyCacheDuration > TimeSpan.Zero)
        {
            // Unknown keys are remembered too, so a client retrying with a wrong key is not a query each time.
            entry.AbsoluteExpirationRelativeToNow = options.KeyCacheDuration;
            entry.Priority = CacheItemPriority.Low;
            _cache.Set(cacheKey, new Lookup(null, now), entry);
        }

        return record;
    }

    /// <summary>One query, waiting for a slot among all lookups and for PostgreSQL at most <paramref name="timeout"/> in all.</summary>
    private async Task<ApiKeyRecord?> LookUpAsync(byte[] hash, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        using var slot = await _concurrent.AcquireAsync(1, deadline.Token).ConfigureAwait(false);
        if (!slot.IsAcquired)
        {
            throw new TimeoutException("Too many API key lookups are waiting for PostgreSQL.");
        }

        return await _store.FindAsync(hash, deadline.Token).ConfigureAwait(false);
    }

    /// <summary>PostgreSQL (or the way to it) failed, or the lookup ran out of time; not the client hanging up.</summary>
    private static bool IsUnavailable(Exception ex, CancellationToken requestAborted) => ex switch
    {
        OperationCanceledException => !requestAborted.IsCancellationRequested,
        NpgsqlException or TimeoutException or SocketException or IOException => true,
        _ => false,
    };

    private sealed record Lookup(ApiKeyRecord? Record, DateTimeOffset CheckedAt);

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "API key {KeyId} of tenant {TenantId} refused: {Reason}")]
    private partial void LogRejected(Guid keyId, string tenantId, string reason);

    [LoggerMessage(EventId = 401, Level = LogLevel.Debug, Message = "API key {KeyId} of tenant {TenantId} served from the cache: PostgreSQL failed ({Reason})")]
    private partial void LogServedStale(Guid keyId, string tenantId, string reason);

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "An API key could not be checked, answered 503 ({ExceptionType}: {Reason})")]
    private partial void LogUnavailable(string exceptionType, string reason);
}
