using System.Globalization;
using System.Net;
using System.Text;
using Hangfire.Dashboard;
using Hangfire.Dashboard.Pages;

namespace Async.Serving.Api.Hangfire;

/// <summary>
/// An operator page of the dashboard (inference jobs, dead letters, webhooks, API keys, model routing) rendered
/// inside Hangfire's own layout: its navigation bar with our menu entries, its Bootstrap styles,
/// scripts and footer. Hangfire renders pages synchronously, so a page reads what it shows first
/// (<see cref="LoadAsync"/>, asynchronously) and then writes it (<see cref="Render"/>). Everything
/// a page writes goes through <see cref="E"/> (HTML encoding) unless it is markup of its own.
/// </summary>
internal abstract class OperatorPage : RazorPage
{
    private string _title = string.Empty;

    protected OperatorPage(string title) => Title = title;

    /// <summary>The page's heading and, through Hangfire's layout, the browser's title.</summary>
    public string Title
    {
        get => _title;
        protected set
        {
            _title = value;
            Layout = new LayoutPage(value);
        }
    }

    /// <summary>The status of the answer: 404 when what the page is about does not exist.</summary>
    public int StatusCode { get; protected set; } = StatusCodes.Status200OK;

    /// <summary>Reads what the page shows; runs before the page is bound to the request, hence the context.</summary>
    public abstract Task LoadAsync(DashboardContext context, CancellationToken cancellationToken);

    /// <summary>Writes the page's content (encoded where it is data) below its title.</summary>
    protected abstract void Render(StringBuilder html);

    /// <summary>Markup shown right of the title (an action of the page), or empty.</summary>
    protected virtual string TitleActions => string.Empty;

    public sealed override void Execute()
    {
        var html = new StringBuilder("<div class=\"row\"><div class=\"col-md-12\"><ul class=\"nav nav-pills\" id=\"operator-pages\" style=\"margin-top:10px\">");
        foreach (var (route, text) in Sections)
        {
            html.Append(Under(RequestPath, route) ? "<li class=\"active\">" : "<li>").Append("<a href=\"").Append(Href(route)).Append("\">")
                .Append(E(text)).Append("</a></li>");
        }

        html.Append("</ul><h1 class=\"page-header\">").Append(E(Title)).Append("</h1>").AppendOutcome(Query("outcome"));
        Render(html);
        WriteLiteral(html.Append("</div></div>").ToString());
    }

    /// <summary>The URL of the dashboard route <paramref name="route"/>, HTML-encoded for an attribute.</summary>
    protected string Href(string route) => E(Url.To(route));

    /// <summary>The operator pages, in the order of the tabs above each of them.</summary>
    private static readonly (string Route, string Text)[] Sections =
        [("/inference", "Inference jobs"), ("/batches", "Batches"), ("/dead-letters", "Dead letters"), ("/webhooks", "Webhooks"), ("/api-keys", "API keys"), ("/routing", "Model routing")];

    private static int _menuAdded;

    /// <summary>
    /// Adds the navigation bar entry <see cref="MenuText"/> once per process (Hangfire's menu is
    /// static): one entry, active on every operator page, as Hangfire's own <i>Jobs</i> covers its
    /// job lists; tabs on the page lead to the others. More entries would wrap Hangfire's bar.
    /// </summary>
    public static void AddMenuEntry()
    {
        if (Interlocked.Exchange(ref _menuAdded, 1) == 0)
        {
            NavigationMenu.Items.Add(page => new MenuItem(MenuText, page.Url.To(Sections[0].Route))
            {
                Active = Sections.Any(s => Under(page.RequestPath, s.Route)),
            });
        }
    }

    public const string MenuText = "Serving";

    private static bool Under(string path, string route) =>
        path.Equals(route, StringComparison.OrdinalIgnoreCase) || path.StartsWith(route + "/", StringComparison.OrdinalIgnoreCase);

    internal static string E(string? value) => WebUtility.HtmlEncode(value ?? string.Empty);

    internal static string Q(string? value) => Uri.EscapeDataString(value ?? string.Empty);

    internal static string Time(DateTimeOffset? value) => value?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture) ?? "—";

    /// <summary>A duration in whole milliseconds (as the API's <c>queue_ms</c>, <c>execution_ms</c>), or a dash.</summary>
    internal static string Ms(TimeSpan? value) =>
        value is { } d ? Math.Max(0, (long)d.TotalMilliseconds).ToString("N0", CultureInfo.InvariantCulture) + " ms" : "—";

    /// <summary>A query string value, trimmed; null when missing or empty.</summary>
    internal static string? Query(DashboardContext context, string name) =>
        context.Request.GetQuery(name) is { Length: > 0 } value ? value.Trim() : null;

    /// <summary>A Bootstrap label for a job or delivery status.</summary>
    internal static string StatusLabel(string? status)
    {
        var style = status switch
        {
            "succeeded" or "delivered" => "success",
            "failed" or "expired" or "disabled" or "open" => "danger",
            "running" => "info",
            "held" or "half_open" => "warning",
            "queued" or "retrying" => "primary",
            _ => "default",
        };
        return $"<span class=\"label label-{style}\">{E(status)}</span>";
    }

    /// <summary>A GET form of filter inputs (text, or a select where choices are given) and a Filter button.</summary>
    internal static StringBuilder AppendFilters(StringBuilder html, IEnumerable<(string Name, string? Value, IReadOnlyList<string>? Choices)> filters, string? hidden = null)
    {
        html.Append("<form method=\"get\" class=\"form-inline\" style=\"margin-bottom:15px\">");
        foreach (var (name, value, choices) in filters)
        {
            html.Append("<div class=\"form-group\" style=\"margin-right:8px\"><label for=\"filter-").Append(E(name)).Append("\">").Append(E(name))
                .Append("</label> ");
            if (choices is null)
            {
                html.Append("<input class=\"form-control input-sm\" id=\"filter-").Append(E(name)).Append("\" name=\"").Append(E(name))
                    .Append("\" value=\"").Append(E(value)).Append("\">");
            }
            else
            {
                html.Append("<select class=\"form-control input-sm\" id=\"filter-").Append(E(name)).Append("\" name=\"").Append(E(name))
                    .Append("\"><option value=\"\">any</option>");
                foreach (var choice in choices)
                {
                    html.Append("<option").Append(choice == value ? " selected" : string.Empty).Append('>').Append(E(choice)).Append("</option>");
                }

                html.Append("</select>");
            }

            html.Append("</div>");
        }

        return html.Append(hidden ?? string.Empty).Append("<button type=\"submit\" class=\"btn btn-sm btn-primary\">Filter</button></form>");
    }
}

/// <summary>
/// Serves an <see cref="OperatorPage"/>: loads it, then has Hangfire render it with its layout.
/// </summary>
internal sealed class OperatorPageDispatcher(Func<OperatorPage> create) : IDashboardDispatcher
{
    public async Task Dispatch(DashboardContext context)
    {
        var http = context.GetHttpContext();
        var page = create();
        await page.LoadAsync(context, http.RequestAborted).ConfigureAwait(false);
        http.Response.StatusCode = page.StatusCode;
        http.Response.Headers.CacheControl = "no-store";
        // Hangfire binds a page to the request (URLs, antiforgery token, layout) only in the dispatcher
        // that AddRazorPage makes, which is not public: a one-route collection hands this page to it.
        var routes = new global::Hangfire.Dashboard.RouteCollection();
        routes.AddRazorPage("/", _ => page);
        await routes.FindDispatcher("/").Item1.Dispatch(context).ConfigureAwait(false);
    }
}
