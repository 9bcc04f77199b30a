using System.Globalization;
using System.Net;
using System.Text;
using Async.Serving.Api.Ledger;
using Async.Serving.Api.Webhooks;
using Hangfire.Dashboard;

namespace Async.Serving.Api.Hangfire;

/// <summary>
/// Dashboard pages over the job ledger: <c>/inference</c> lists recent jobs (filters <c>status</c>,
/// <c>pipeline</c>, <c>model</c>, <c>tenant</c>, <c>limit</c>), <c>/inference/job?id=</c> shows one.
/// They sit behind the dashboard's own authorisation. Everything written is HTML-encoded. The page
/// frame and the encoders are shared with the other operator pages (dead letters).
/// </summary>
internal static class InferenceJobsPages
{
    private static int _registered;

    /// <summary>Adds the routes and the menu entry, once per process (Hangfire's route table is static).</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1)
        {
            return;
        }

        DashboardRoutes.Routes.Add("/inference", new ListDispatcher());
        DashboardRoutes.Routes.Add("/inference/job", new DetailDispatcher());
        NavigationMenu.Items.Add(page => new MenuItem("Inference jobs", page.Url.To("/inference")));
    }

    /// <summary>The operator pages, linked from each one's header.</summary>
    private static readonly (string Route, string Name)[] OperatorPages =
        [("/inference", "Inference jobs"), ("/dead-letters", "Dead letters"), ("/api-keys", "API keys"), ("/webhooks", "Webhooks")];

    internal static string E(string? value) => WebUtility.HtmlEncode(value ?? string.Empty);

    internal static string Q(string? value) => Uri.EscapeDataString(value ?? string.Empty);

    internal static string Time(DateTimeOffset? value) => value?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture) ?? "—";

    internal static string? Query(DashboardContext context, string name) =>
        context.Request.GetQuery(name) is { Length: > 0 } value ? value.Trim() : null;

    internal static async Task WritePageAsync(DashboardContext context, string title, string body, int status = 200)
    {
        var html = new StringBuilder()
            .Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(E(title))
            .Append(" · Async.Serving operations</title><style>")
            .Append("body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}table{border-collapse:collapse;width:100%;font-size:.9rem}")
            .Append("th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}th{background:#f4f4f4}")
            .Append("code{font-size:.85rem}.failed,.expired{color:#b00}.succeeded{color:#070}.cancelled{color:#777}form input{width:9rem}")
            .Append("</style></head><body><p><a href=\"").Append(E(context.Request.PathBase)).Append("/\">← Hangfire dashboard</a>");
        foreach (var (route, name) in OperatorPages)
        {
            html.Append(" · <a href=\"").Append(E(context.Request.PathBase)).Append(route).Append("\">").Append(name).Append("</a>");
        }

        html.Append("</p><h1>").Append(E(title)).Append("</h1>")
            .Append(body).Append("</body></html>");
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/html; charset=utf-8";
        await context.Response.WriteAsync(html.ToString()).ConfigureAwait(false);
    }

    private sealed class ListDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            var http = context.GetHttpContext();
            var query = new LedgerQuery(
                Query(context, "status"), Query(context, "pipeline"), Query(context, "model"), Query(context, "tenant"),
                int.TryParse(Query(context, "limit"), NumberStyles.None, CultureInfo.InvariantCulture, out var limit) ? Math.Clamp(limit, 1, 1000) : 100);
            var rows = await http.RequestServices.GetRequiredService<LedgerStore>().ListAsync(query, http.RequestAborted).ConfigureAwait(false);

            var body = new StringBuilder("<form method=\"get\">");
            foreach (var (name, value) in new[] { ("status", query.Status), ("pipeline", query.Pipeline), ("model", query.Model), ("tenant", query.TenantId) })
            {
                body.Append("<label>").Append(name).Append(" <input name=\"").Append(name).Append("\" value=\"").Append(E(value)).Append("\"></label> ");
            }

            body.Append("<button type=\"submit\">Filter</button></form><p>").Append(rows.Count).Append(" most recent jobs from the ledger.</p>")
                .Append("<table><thead><tr><th>Job</th><th>Status</th><th>Tenant</th><th>Pipeline</th><th>Model</th><th>Created</th>")
                .Append("<th>Attempts</th><th>Input bytes</th><th>Compute ms</th><th>Error</th></tr></thead><tbody>");
            foreach (var row in rows)
            {
                body.Append("<tr><td><a href=\"").Append(E(context.Request.PathBase)).Append("/inference/job?id=").Append(E(Q(row.JobId))).Append("\"><code>")
                    .Append(E(row.JobId)).Append("</code></a></td><td class=\"").Append(E(row.Status)).Append("\">").Append(E(row.Status))
                    .Append("</td><td>").Append(E(row.TenantId)).Append("</td><td>").Append(E(row.Pipeline)).Append("</td><td>").Append(E(row.Model))
                    .Append("</td><td>").Append(Time(row.CreatedAt)).Append("</td><td>").Append(row.Attempts).Append("</td><td>").Append(row.InputBytes)
                    .Append("</td><td>").Append(row.ComputeMs?.ToString(CultureInfo.InvariantCulture) ?? "—").Append("</td><td>").Append(E(row.ErrorCode))
                    .Append("</td></tr>");
            }

            body.Append("</tbody></table>");
            await WritePageAsync(context, "Inference jobs", body.ToString()).ConfigureAwait(false);
        }
    }

    private sealed class DetailDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            var http = context.GetHttpContext();
            var id = Query(context, "id");
            var found = id is null ? null : await http.RequestServices.GetRequiredService<LedgerStore>().GetAsync(id, http.RequestAborted).ConfigureAwait(false);
            if (found is not { } job)
            {
                await WritePageAsync(context, "Job not found", $"<p>The ledger has no job <code>{E(id)}</code>.</p>", 404).ConfigureAwait(false);
                return;
            }

            var (row, events) = job;
            var body = new StringBuilder("<table><tbody>");
            void Line(string name, string encodedValue) => body.Append("<tr><th>").Append(name).Append("</th><td>").Append(encodedValue).Append("</td></tr>");
            Line("Job", $"<code>{E(row.JobId)}</code>");
            Line("Status", $"<span class=\"{E(row.Status)}\">{E(row.Status)}</span>");
            Line("Tenant", E(row.TenantId));
            Line("Pipeline", E(row.Pipeline));
            Line("Model", E(row.Model));
            Line("Created", Time(row.CreatedAt));
            Line("Started", Time(row.StartedAt));
            Line("Completed", Time(row.CompletedAt));
            Line("Attempts", row.Attempts.ToString(CultureInfo.InvariantCulture));
            Line("Input bytes", row.InputBytes.ToString(CultureInfo.InvariantCulture));
            Line("Compute ms", row.ComputeMs?.ToString(CultureInfo.InvariantCulture) ?? "—");
            Line("Error", E(row.ErrorCode));
            Line("Ledger updated", Time(row.UpdatedAt));
            body.Append("</tbody></table><h2>Timeline</h2><table><thead><tr><th>Time</th><th>Status</th></tr></thead><tbody>");
            foreach (var change in events)
            {
                body.Append("<tr><td>").Append(Time(change.At)).Append("</td><td class=\"").Append(E(change.Status)).Append("\">")
                    .Append(E(change.Status)).Append("</td></tr>");
            }

            body.Append("</tbody></table>");
            var deliveries = await http.RequestServices.GetRequiredService<WebhookStore>().AttemptsAsync(row.JobId, http.RequestAborted).ConfigureAwait(false);
            body.Append("<h2>Webhook deliveries</h2>");
            if (deliveries.Count == 0)
            {
                body.Append("<p>None.</p>");
            }
            else
            {
                body.Append("<table><thead><tr><th>Time</th><th>Event</th><th>URL</th><th>Attempt</th><th>Outcome</th><th>Detail</th></tr></thead><tbody>");
                foreach (var d in deliveries)
                {
                    body.Append("<tr><td>").Append(Time(d.At)).Append("</td><td>").Append(E(d.EventType)).Append("</td><td>").Append(E(d.Url))
                        .Append("</td><td>").Append(d.Attempt.ToString(CultureInfo.InvariantCulture)).Append("</td><td>").Append(E(d.Outcome))
                        .Append("</td><td>").Append(E(d.Detail)).Append("</td></tr>");
                }

                body.Append("</tbody></table>");
            }

            // Each attempt is also a Hangfire job, with its result, and can be requeued there.
            body.Append("<p><a href=\"").Append(E(context.Request.PathBase))
                .Append("/jobs/failed\">Failed Hangfire jobs</a> · <a href=\"").Append(E(context.Request.PathBase)).Append("/jobs/succeeded\">succeeded</a></p>");
            await WritePageAsync(context, "Job " + row.JobId, body.ToString()).ConfigureAwait(false);
        }
    }
}
