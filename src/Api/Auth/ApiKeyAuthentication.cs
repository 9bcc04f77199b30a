using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Security.Claims;
using System.Text.Encodings.Web;
using Async.Serving.Api.Errors;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Async.Serving.Api.Auth;

/// <summary>Section <c>Serving:Auth</c>.</summary>
public sealed class ApiKeyOptions
{
    public const string Section = "Serving:Auth";

    /// <summary>A key accepted without a database row, for local development; unset in production.</summary>
    public string? DevelopmentKey { get; set; }

    public string DevelopmentTenant { get; set; } = "dev";

    /// <summary>
    /// How long a key looked up in PostgreSQL (found or not) is remembered. A key revoked with
    /// <c>DELETE /v1/keys/{id}</c> is refused at once by every API instance that hears the revocation on
    /// Redis; one that misses it (Redis away), or a key revoked in the database directly, keeps working
    /// at most this long. Expiry is checked on every request.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan KeyCacheDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// While PostgreSQL cannot be reached, a key found valid less than <see cref="KeyCacheDuration"/> plus
    /// this long ago is still accepted (expiry is still checked); other keys get 503 <c>auth_unavailable</c>.
    /// A key revoked during an outage keeps working this much longer. 0 turns the fallback off.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan StaleKeyLifetime { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Longest wait for one key lookup (a slot among the concurrent ones, then PostgreSQL), then 503.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:00:30")]
    public TimeSpan LookupTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Key lookups in PostgreSQL at once, for all clients together.</summary>
    [Range(1, 1024)]
    public int MaxConcurrentLookups { get; set; } = 16;

    /// <summary>Lookups that may wait for one of <see cref="MaxConcurrentLookups"/>; more are answered 503 at once.</summary>
    [Range(0, 100_000)]
    public int MaxQueuedLookups { get; set; } = 256;

    /// <summary>
    /// Lookups that reach PostgreSQL one client address (an IPv6 /64) may make at once: a token bucket
    /// refilled at <see cref="LookupsPerClientPerMinute"/>. Cache hits cost nothing; unknown keys always miss.
    /// </summary>
    [Range(1, 1_000_000)]
    public int LookupsPerClient { get; set; } = 20;

    [Range(1, 1_000_000)]
    public int LookupsPerClientPerMinute { get; set; } = 60;

    /// <summary>
    /// <c>last_used_at</c> of a key is written at most this often per key and API instance, and a stored
    /// value less than this old is not rewritten: it is exact to about this much.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan LastUsedPrecision { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How often the keys used since the last write are written, in one statement, in the background.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:10:00")]
    public TimeSpan LastUsedFlushInterval { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary><c>Authorization: Bearer &lt;api key&gt;</c> → the key's tenant as the <c>tenant</c> claim.</summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    ApiKeyValidator validator) : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string TenantClaim = "tenant";
    public const string KeyIdClaim = "key_id";
    public const string AdminClaim = "admin";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return AuthenticateResult.NoResult();
        }

        var key = header["Bearer ".Length..].Trim();
        ApiKeyIdentity? identity;
        try
        {
            identity = await validator.ValidateAsync(key, Context.Connection.RemoteIpAddress, Context.RequestAborted).ConfigureAwait(false);
        }
        catch (ApiKeyCheckRefusedException refused)
        {
            // Answered by the challenge (503 or 429), not as a wrong key.
            Context.Features.Set(refused);
            return AuthenticateResult.Fail(refused);
        }

        if (identity is null)
        {
            // One message for unknown, expired and revoked keys: the answer tells nothing about a key.
            return AuthenticateResult.Fail("Unknown, expired or revoked API key.");
        }

        List<Claim> claims = [new Claim(TenantClaim, identity.TenantId), new Claim(KeyIdClaim, identity.KeyId)];
        if (identity.IsAdmin)
        {
            claims.Add(new Claim(AdminClaim, "true"));
        }

        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        if (Context.Features.Get<ApiKeyCheckRefusedException>() is { } refused)
        {
            Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(refused.RetryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            var title = refused.Status == StatusCodes.Status429TooManyRequests ? "Too many requests." : "Authentication is unavailable.";
            await ApiProblems.Problem(refused.Status, refused.Code, title, refused.Message).ExecuteAsync(Context).ConfigureAwait(false);
            return;
        }

        Response.Headers.WWWAuthenticate = "Bearer";
        var problem = ApiProblems.Problem(StatusCodes.Status401Unauthorized, ApiProblems.Unauthorized,
            "Authentication required.", "Send a valid API key as 'Authorization: Bearer <key>'.");
        await problem.ExecuteAsync(Context).ConfigureAwait(false);
    }
}

public static class AuthExtensions
{
    /// <summary>API keys: the development key from configuration and the keys in PostgreSQL (table created at start).</summary>
    public static IHostApplicationBuilder AddApiKeyAuth(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<ApiKeyOptions>()
            .BindConfiguration(ApiKeyOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton(sp => NpgsqlDataSource.Create(
            sp.GetRequiredService<IConfiguration>().GetConnectionString("Postgres")
            ?? throw new InvalidOperationException("ConnectionStrings:Postgres is not set.")));
        builder.Services.AddSingleton<ApiKeyStore>();
        builder.Services.AddSingleton<ApiKeyRevocations>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ApiKeyRevocations>());
        builder.Services.AddSingleton<ApiKeyUsage>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ApiKeyUsage>());
        builder.Services.AddSingleton<ApiKeyValidator>();
        builder.Services.AddHostedService<ApiKeySchemaMigration>();
        builder.Services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy("tenant", p => p.RequireClaim(ApiKeyAuthenticationHandler.TenantClaim));
        ApiKeyPages.Register();
        return builder;
    }

    public static string TenantId(this ClaimsPrincipal user) =>
        user.FindFirstValue(ApiKeyAuthenticationHandler.TenantClaim)
        ?? throw new InvalidOperationException("The request is not authenticated.");

    /// <summary>Whether the key that authenticated the request has the admin scope (the development key has).</summary>
    public static bool IsAdmin(this ClaimsPrincipal user) => user.HasClaim(ApiKeyAuthenticationHandler.AdminClaim, "true");

    /// <summary>The id of the key that authenticated the request (<c>development</c> for the development key).</summary>
    public static string ApiKeyId(this ClaimsPrincipal user) =>
        user.FindFirstValue(ApiKeyAuthenticationHandler.KeyIdClaim)
        ?? throw new InvalidOperationException("The request is not authenticated.");
}
