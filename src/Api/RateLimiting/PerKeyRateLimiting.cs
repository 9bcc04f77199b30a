using System.Globalization;
using System.Threading.RateLimiting;
using Async.Serving.Api.Auth;
using Async.Serving.Api.Errors;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.RateLimiting;

/// <summary>
/// A token bucket per API key (tenant and key id), refilled every second. The limiter runs after
/// authorisation, so a request without a valid key is refused by auth and never takes a token.
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

    private static RateLimitPartition<string> Partition(HttpContext context)
    {
        var user = context.User;
        if (user.Identity?.IsAuthenticated != true)
        {
            // Not reached on the routes that require a key; elsewhere, nothing to count against.
            return RateLimitPartition.GetNoLimiter(string.Empty);
        }

        var limits = context.RequestServices.GetRequiredService<IOptions<RateLimitOptions>>().Value;
        return RateLimitPartition.GetTokenBucketLimiter($"{user.TenantId()}/{user.ApiKeyId()}", _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = limits.Burst,
            TokensPerPeriod = limits.PermitsPerSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            AutoReplenishment = true,
            QueueLimit = 0, // answer at once; the client decides whether to wait Retry-After
        });
    }

    private static async ValueTask RejectAsync(OnRejectedContext context, CancellationToken cancellationToken)
    {
        var wait = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : TimeSpan.FromSeconds(1);
        var seconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
        context.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        var problem = ApiProblems.Problem(StatusCodes.Status429TooManyRequests, ApiProblems.RateLimited,
            "Too many requests.", $"This API key's rate limit is used up; retry after {seconds} s.");
        await problem.ExecuteAsync(context.HttpContext).ConfigureAwait(false);
    }
}
