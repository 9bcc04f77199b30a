using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Async.Serving.Api.Errors;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Auth;

/// <summary>Section <c>Serving:Auth</c>.</summary>
public sealed class ApiKeyOptions
{
    public const string Section = "Serving:Auth";

    /// <summary>A key accepted without a database row, for local development; unset in production.</summary>
    public string? DevelopmentKey { get; set; }

    public string DevelopmentTenant { get; set; } = "dev";
}

/// <summary><c>Authorization: Bearer &lt;api key&gt;</c> → the key's tenant as the <c>tenant</c> claim.</summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    IOptions<ApiKeyOptions> keys) : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string TenantClaim = "tenant";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        var key = header["Bearer ".Length..].Trim();
        var tenant = Match(key);
        if (tenant is null)
        {
            return Task.FromResult(AuthenticateResult.Fail("Unknown API key."));
        }

        var identity = new ClaimsIdentity([new Claim(TenantClaim, tenant)], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer";
        var problem = ApiProblems.Problem(StatusCodes.Status401Unauthorized, ApiProblems.Unauthorized,
            "Authentication required.", "Send a valid API key as 'Authorization: Bearer <key>'.");
        await problem.ExecuteAsync(Context).ConfigureAwait(false);
    }

    private string? Match(string key)
    {
        var development = keys.Value.DevelopmentKey;
        if (string.IsNullOrEmpty(development) || key.Length == 0)
        {
            return null;
        }

        // Compare digests in constant time, so neither the key nor its length leaks through timing.
        var given = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(development));
        return CryptographicOperations.FixedTimeEquals(given, expected) ? keys.Value.DevelopmentTenant : null;
    }
}

public static class AuthExtensions
{
    public static IHostApplicationBuilder AddApiKeyAuth(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ApiKeyOptions>().BindConfiguration(ApiKeyOptions.Section);
        builder.Services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy("tenant", p => p.RequireClaim(ApiKeyAuthenticationHandler.TenantClaim));
        return builder;
    }

    public static string TenantId(this ClaimsPrincipal user) =>
        user.FindFirstValue(ApiKeyAuthenticationHandler.TenantClaim)
        ?? throw new InvalidOperationException("The request is not authenticated.");
}
