using System.Globalization;
using System.Threading.RateLimiting;
using Async.Serving.Api.Auth;
using Async.Serving.Api.Errors;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using RedisRateLimiting;
using StackExchange.Redis;

namespace Async.Serving.Api.RateLimiting;

/// <summary>
/// A token bucket per API key (tenant and key id), refilled every second, kept in Redis (the
/// RedisRateLimiting package behind ASP.NET Core's rate limiter): every API instance takes its
/// tokens from the same bucket, so a key's limit holds for the whole fleet, not per process. The
/// limiter runs after authorisation, so a request without a valid key is refused by auth and never
/// takes a token. Each process takes its tokens from the shared bucket a few at a time
/// (<see cref="PrefetchingRateLimiter"/>, <see cref="PrefetchChunk"/>): most requests then cost no
/// round trip, and the fleet stays within the limit. Redis unreachable fails the request as every other store outage does (503
/// <c>store_unavailable</c>, see <see cref="OutageExceptionHandler"/>).
/// </summary>
public static class PerKeyRateLimiting
{
    public const string Policy = "per-key";

    public static IHostApplicationBuilder AddPerKeyRateLimiting(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<RateLimitOptions>()
            .BindConfiguration(RateLimitOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddRateLimiter(options =>
        {
            options.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            options.AddPolicy(Policy, Partition);
            options.OnRejected = RejectAsync;
        });
        return builder;
    }

    /// <summary>The Redis key of a partition's bucket is <c>rl:tb:{api-key:&lt;tenant&gt;/&lt;key id&gt;}</c> (its timestamp: the same with <c>:ts</c>).</summary>
    internal static string PartitionKey(string tenant, string keyId) => $"api-key:{tenant}/{keyId}";

    private static RateLimitPartition<string> Partition(HttpContext context)
    {
        var user = context.User;
        if (user.Identity?.IsAuthenticated != true)
        {
            // Not reached on the routes that require a key; elsewhere, nothing to count against.
            return RateLimitPartition.GetNoLimiter(string.Empty);
        }

        var services = context.RequestServices;
        return RateLimitPartition.Get(PartitionKey(user.TenantId(), user.ApiKeyId()), key =>
        {
            var limits = services.GetRequiredService<IOptions<RateLimitOptions>>().Value;
            var redis = services.GetRequiredService<IConnectionMultiplexer>();
            var shared = new RedisTokenBucketRateLimiter<string>(key, new RedisTokenBucketRateLimiterOptions
            {
                ConnectionMultiplexerFactory = () => redis,
                TokenLimit = limits.Burst,
                TokensPerPeriod = limits.PermitsPerSecond,
                ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            });
            return new PrefetchingRateLimiter(shared, PrefetchChunk(limits), TimeSpan.FromSeconds(1), TimeProvider.System);
        });
    }

    /// <summary>
    /// Tokens one round trip to the shared bucket takes for this process: a tenth of the smaller of
    /// the rate and the burst, at most 100, at least 1 (a small limit is then exact: every request asks Redis).
    /// </summary>
    internal static int PrefetchChunk(RateLimitOptions limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        return Math.Clamp(Math.Min(limits.PermitsPerSecond, limits.Burst) / 10, 1, 100);
    }

    private static async ValueTask RejectAsync(OnRejectedContext context, CancellationToken cancellationToken)
    {
        var seconds = RetryAfterSeconds(context.Lease);
        context.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        var problem = ApiProblems.Problem(StatusCodes.Status429TooManyRequests, ApiProblems.RateLimited,
            "Too many requests.", $"This API key's rate limit is used up; retry after {seconds} s.");
        await problem.ExecuteAsync(context.HttpContext).ConfigureAwait(false);
    }

    /// <summary>Whole seconds until the bucket has a token again, at least 1: the next refill is at most one period away.</summary>
    internal static int RetryAfterSeconds(RateLimitLease lease)
    {
        var wait = lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter
            : lease.TryGetMetadata(RateLimitMetadataName.RetryAfter, out var redisSeconds) ? TimeSpan.FromSeconds(redisSeconds)
            : TimeSpan.FromSeconds(1);
        return Math.Clamp((int)Math.Ceiling(wait.TotalSeconds), 1, 3600);
    }
}
