using System.Security.Cryptography;
using System.Text;
using Hangfire.Dashboard;

namespace Async.Serving.Api.Hangfire;

/// <summary>
/// HTTP Basic authentication for the dashboard with the admin credential from configuration,
/// compared in constant time. Without a configured password nobody gets in: the dashboard is
/// never open by default.
/// </summary>
internal sealed class DashboardBasicAuthFilter(HangfireOptions options) : IDashboardAuthorizationFilter
{
    public bool Authorize(DashboardContext context)
    {
        var http = context.GetHttpContext();
        if (options.DashboardPassword is { Length: > 0 } password && Matches(http.Request.Headers.Authorization.ToString(), password))
        {
            return true;
        }

        http.Response.Headers.WWWAuthenticate = "Basic realm=\"Async.Serving operations\", charset=\"UTF-8\"";
        return false;
    }

    private bool Matches(string header, string password)
    {
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        string decoded;
        try
        {
            decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header["Basic ".Length..].Trim()));
        }
        catch (FormatException)
        {
            return false;
        }

        var expected = SHA256.HashData(Encoding.UTF8.GetBytes($"{options.DashboardUsername}:{password}"));
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(decoded)), expected);
    }
}
