using System.Net;
using System.Text;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Antiforgery;

namespace Async.Serving.Api.Hangfire;

/// <summary>
/// The pieces of an operator action on a dashboard page: a POST form that carries the antiforgery
/// token (Hangfire checks it on every dashboard POST, <see cref="DashboardGuard"/> refuses other
/// origins), reading its fields, and the redirect back to the page with the outcome to show.
/// </summary>
internal static class DashboardForms
{
    /// <summary>The request's antiforgery tokens, or null where no antiforgery is registered.</summary>
    public static AntiforgeryTokenSet? Token(DashboardContext context)
    {
        var http = context.GetHttpContext();
        return http.RequestServices.GetService<IAntiforgery>()?.GetAndStoreTokens(http);
    }

    /// <summary>
    /// Appends a form that POSTs <paramref name="fields"/> to the dashboard route <paramref name="route"/>;
    /// <paramref name="inputs"/> are visible text inputs; <paramref name="style"/> is the Bootstrap button style.
    /// </summary>
    public static StringBuilder AppendPostForm(
        this StringBuilder html,
        DashboardContext context,
        AntiforgeryTokenSet? token,
        string route,
        string button,
        IEnumerable<(string Name, string? Value)> fields,
        IEnumerable<(string Label, string Name, string? Value)>? inputs = null,
        string style = "btn-default")
    {
        ArgumentNullException.ThrowIfNull(html);
        ArgumentNullException.ThrowIfNull(context);
        var visible = inputs?.ToList() ?? [];
        html.Append("<form method=\"post\" action=\"").Append(E(context.Request.PathBase + route)).Append('"')
            .Append(visible.Count == 0 ? " style=\"display:inline\">" : " class=\"form-inline\">");
        foreach (var (name, value) in fields)
        {
            html.Append("<input type=\"hidden\" name=\"").Append(E(name)).Append("\" value=\"").Append(E(value)).Append("\">");
        }

        if (token?.RequestToken is { } requestToken)
        {
            html.Append("<input type=\"hidden\" name=\"").Append(E(token.FormFieldName)).Append("\" value=\"").Append(E(requestToken)).Append("\">");
        }

        foreach (var (label, name, value) in visible)
        {
            html.Append("<div class=\"form-group\" style=\"margin-right:8px\"><label>").Append(E(label))
                .Append(" <input class=\"form-control input-sm\" name=\"").Append(E(name)).Append("\" value=\"").Append(E(value)).Append("\"></label></div>");
        }

        return html.Append("<button type=\"submit\" class=\"btn ").Append(visible.Count == 0 ? "btn-xs " : "btn-sm ").Append(E(style)).Append("\">")
            .Append(E(button)).Append("</button></form>");
    }

    /// <summary>Appends the outcome of the last action (carried in the query by <see cref="SeeOther"/>), when there is one.</summary>
    public static StringBuilder AppendOutcome(this StringBuilder html, string? outcome)
    {
        ArgumentNullException.ThrowIfNull(html);
        return string.IsNullOrWhiteSpace(outcome)
            ? html
            : html.Append("<div class=\"alert alert-info\" id=\"outcome\" role=\"status\">").Append(E(outcome.Trim())).Append("</div>");
    }

    /// <summary>A field of the POSTed form, trimmed; null when missing or empty.</summary>
    public static async Task<string?> FieldAsync(DashboardContext context, string name)
    {
        ArgumentNullException.ThrowIfNull(context);
        var value = (await context.Request.GetFormValuesAsync(name).ConfigureAwait(false)).FirstOrDefault()?.Trim();
        return string.IsNullOrEmpty(value) ? null : value;
    }

    /// <summary>False, after answering 405, unless the request is a POST.</summary>
    public static bool IsPost(DashboardContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var http = context.GetHttpContext();
        if (HttpMethods.IsPost(http.Request.Method))
        {
            return true;
        }

        http.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
        return false;
    }

    /// <summary>303 to the dashboard route <paramref name="route"/> with <paramref name="query"/> (empty values left out) and the outcome.</summary>
    public static void SeeOther(DashboardContext context, string route, string outcome, params (string Name, string? Value)[] query)
    {
        ArgumentNullException.ThrowIfNull(context);
        var location = new StringBuilder(context.Request.PathBase).Append(route).Append("?outcome=").Append(WebUtility.UrlEncode(outcome));
        foreach (var (name, value) in query)
        {
            if (!string.IsNullOrEmpty(value))
            {
                location.Append('&').Append(name).Append('=').Append(WebUtility.UrlEncode(value));
            }
        }

        var http = context.GetHttpContext();
        http.Response.StatusCode = StatusCodes.Status303SeeOther;
        http.Response.Headers.Location = location.ToString();
    }

    private static string E(string? value) => OperatorPage.E(value);
}
