using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Async.Serving.Api.Errors;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Hangfire;

/// <summary>
/// Who may use the dashboard, and how a browser gets in without becoming a tool of other sites:
/// <list type="bullet">
/// <item>People sign in on <c>/hangfire/login</c> with the admin credential and get a session cookie
/// (<c>HttpOnly</c>, <c>SameSite=Strict</c>, path <c>/hangfire</c>) that a browser does not send with
/// requests started by another site. The dashboard never answers with a Basic challenge, so a browser
/// never prompts for, caches and then resends a Basic credential on its own.</item>
/// <item>HTTP Basic with the same credential still works for tools, for reading (GET, HEAD) only.</item>
/// <item>Every state-changing request (POST …) from another origin is refused 403 (<c>Origin</c>,
/// <c>Sec-Fetch-Site</c>), and Hangfire's own antiforgery token (ASP.NET Core antiforgery) is required
/// on top, so a dashboard action needs a page of the dashboard itself.</item>
/// </list>
/// </summary>
internal static partial class DashboardAuth
{
    public const string Scheme = "Dashboard";
    public const string CookieName = "serving_dashboard";
    public const string AdminClaim = "dashboard_admin";

    public static ClaimsPrincipal Admin(string username, string method) =>
        new(new ClaimsIdentity([new Claim(ClaimTypes.Name, username), new Claim(AdminClaim, method)], Scheme));

    public static bool IsAdmin(ClaimsPrincipal user) => user.HasClaim(c => c.Type == AdminClaim);

    /// <summary>The configured credential, compared as SHA-256 digests in constant time; never true without a password.</summary>
    public static bool Matches(HangfireOptions options, string username, string password)
    {
        if (options.DashboardPassword is not { Length: > 0 } expected)
        {
            return false;
        }

        var given = SHA256.HashData(Encoding.UTF8.GetBytes($"{username}:{password}"));
        return CryptographicOperations.FixedTimeEquals(given, SHA256.HashData(Encoding.UTF8.GetBytes($"{options.DashboardUsername}:{expected}")));
    }

    /// <summary>Lets Hangfire show its pages to the admin principal that <see cref="DashboardGuard"/> put on the request.</summary>
    internal sealed class AdminFilter : IDashboardAuthorizationFilter
    {
        public bool Authorize(DashboardContext context) => IsAdmin(context.GetHttpContext().User);
    }
}

/// <summary>In front of the dashboard (<c>/hangfire</c> and below): the cross-site check, the login page, and who the request is.</summary>
internal sealed partial class DashboardGuard(RequestDelegate next, IOptions<HangfireOptions> options, ILogger<DashboardGuard> logger)
{
    public const string Prefix = "/hangfire";

    public async Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        var changesState = !(HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method) || HttpMethods.IsOptions(request.Method));
        if (changesState && CrossSiteReason(request) is { } reason)
        {
            LogCrossSite(logger, request.Method, request.Path, reason);
            await Forbidden(context, $"A dashboard {request.Method} from another site is refused ({reason}).").ConfigureAwait(false);
            return;
        }

        var path = request.Path.Value ?? string.Empty;
        if (path.Equals(Prefix + "/login", StringComparison.OrdinalIgnoreCase))
        {
            await LoginAsync(context, changesState).ConfigureAwait(false);
            return;
        }

        if (path.Equals(Prefix + "/logout", StringComparison.OrdinalIgnoreCase) && changesState)
        {
            await context.SignOutAsync(DashboardAuth.Scheme).ConfigureAwait(false);
            context.Response.StatusCode = StatusCodes.Status303SeeOther;
            context.Response.Headers.Location = request.PathBase + Prefix + "/login";
            return;
        }

        var session = await context.AuthenticateAsync(DashboardAuth.Scheme).ConfigureAwait(false);
        if (session.Succeeded && DashboardAuth.IsAdmin(session.Principal))
        {
            context.User = session.Principal;
        }
        else if (Basic(request) is { } basic)
        {
            if (DashboardAuth.Matches(options.Value, basic.Username, basic.Password))
            {
                if (changesState)
                {
                    await Forbidden(context, $"HTTP Basic is for reading the dashboard only; sign in at {request.PathBase}{Prefix}/login to act.").ConfigureAwait(false);
                    return;
                }

                context.User = DashboardAuth.Admin(basic.Username, "basic");
            }
        }
        else if (!(context.User.Identity?.IsAuthenticated ?? false) && HttpMethods.IsGet(request.Method) && WantsHtml(request))
        {
            context.Response.Redirect(request.PathBase + Prefix + "/login");
            return;
        }

        await next(context).ConfigureAwait(false);
    }

    /// <summary>Why the request comes from another site, or null: <c>Sec-Fetch-Site</c> other than same-origin or none, or an <c>Origin</c> that is not this host.</summary>
    internal static string? CrossSiteReason(HttpRequest request)
    {
        var fetchSite = request.Headers["Sec-Fetch-Site"].ToString();
        if (fetchSite.Length > 0 && !fetchSite.Equals("same-origin", StringComparison.OrdinalIgnoreCase) && !fetchSite.Equals("none", StringComparison.OrdinalIgnoreCase))
        {
            return $"Sec-Fetch-Site: {fetchSite}";
        }

        var origin = request.Headers.Origin.ToString();
        if (origin.Length == 0)
        {
            return null; // not a browser, or a browser that sends neither: the antiforgery token still applies
        }

        // Host and port only: behind a proxy that ends TLS the request's own scheme is http.
        return Uri.TryCreate(origin, UriKind.Absolute, out var uri) && uri.Authority.Equals(request.Host.Value, StringComparison.OrdinalIgnoreCase)
            ? null
            : $"Origin: {origin}";
    }

    private async Task LoginAsync(HttpContext context, bool submitted)
    {
        var request = context.Request;
        if (!submitted)
        {
            await WritePageAsync(context, StatusCodes.Status200OK, error: null).ConfigureAwait(false);
            return;
        }

        var form = request.HasFormContentType ? await request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false) : null;
        var username = form?["username"].ToString() ?? string.Empty;
        if (form is null || !DashboardAuth.Matches(options.Value, username, form["password"].ToString()))
        {
            LogLoginFailed(logger, context.Connection.RemoteIpAddress?.ToString() ?? "unknown");
            await WritePageAsync(context, StatusCodes.Status401Unauthorized, "Wrong user name or password.").ConfigureAwait(false);
            return;
        }

        await context.SignInAsync(DashboardAuth.Scheme, DashboardAuth.Admin(username, "login"), new AuthenticationProperties { IsPersistent = false })
            .ConfigureAwait(false);
        context.Response.StatusCode = StatusCodes.Status303SeeOther;
        context.Response.Headers.Location = request.PathBase + Prefix + "/";
    }

    private static async Task WritePageAsync(HttpContext context, int status, string? error)
    {
        var action = WebUtility.HtmlEncode(context.Request.PathBase + Prefix + "/login");
        var message = error is null ? string.Empty : $"<p class=\"error\">{WebUtility.HtmlEncode(error)}</p>";
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/html; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        context.Response.Headers["X-Frame-Options"] = "DENY";
        context.Response.Headers.ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";
        await context.Response.WriteAsync($$"""
            <!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Sign in · Async.Serving operations</title>
            <style>body{font-family:system-ui,sans-serif;margin:3rem auto;max-width:22rem;color:#222}label{display:block;margin:.8rem 0}
            input{width:100%;padding:.4rem}.error{color:#b00}</style></head><body><h1>Async.Serving operations</h1>{{message}}
            <form method="post" action="{{action}}"><label>User <input name="username" autocomplete="username" required></label>
            <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
            <button type="submit">Sign in</button></form></body></html>
            """, context.RequestAborted).ConfigureAwait(false);
    }

    private static (string Username, string Password)? Basic(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        try
        {
            var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header["Basic ".Length..].Trim()));
            var colon = decoded.IndexOf(':', StringComparison.Ordinal);
            return colon < 0 ? (decoded, string.Empty) : (decoded[..colon], decoded[(colon + 1)..]);
        }
        catch (FormatException)
        {
            return (string.Empty, string.Empty);
        }
    }

    private static bool WantsHtml(HttpRequest request) =>
        request.Headers.Accept.ToString().Contains("text/html", StringComparison.OrdinalIgnoreCase);

    private static Task Forbidden(HttpContext context, string detail) =>
        ApiProblems.Problem(StatusCodes.Status403Forbidden, ApiProblems.Forbidden, "Forbidden.", detail).ExecuteAsync(context);

    [LoggerMessage(EventId = 460, Level = LogLevel.Warning, Message = "Dashboard {Method} {Path} refused as cross-site ({Reason})")]
    private static partial void LogCrossSite(ILogger logger, string method, string path, string reason);

    [LoggerMessage(EventId = 461, Level = LogLevel.Warning, Message = "Dashboard sign-in failed from {Client}")]
    private static partial void LogLoginFailed(ILogger logger, string client);
}
