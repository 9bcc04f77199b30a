using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Async.Serving.Api.Hangfire;
using Hangfire;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Webhooks;

/// <summary>
/// Dashboard page <c>/webhooks</c>, the operator's side of the tenants' webhook routes, across
/// tenants: delivery attempts newest first (filters <c>tenant</c>, <c>job</c>, <c>status</c>,
/// <c>limit</c>, paged with <c>before</c>) with a Redeliver button, the URLs disabled by a 410 with
/// an Enable button, and a form that sends a signed <c>webhook.test</c> event for a tenant to a URL
/// (through the SSRF check, as <c>POST /v1/webhooks/test</c>). Actions are POSTs behind the
/// dashboard's authorisation and cross-site protection.
/// </summary>
internal static partial class WebhookPages
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 500;
    public const int DisabledLimit = 200;

    private static int _registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1)
        {
            return;
        }

        DashboardRoutes.Routes.Add("/webhooks", new ListDispatcher());
        DashboardRoutes.Routes.Add("/webhooks/redeliver", new RedeliverDispatcher());
        DashboardRoutes.Routes.Add("/webhooks/enable", new EnableDispatcher());
        DashboardRoutes.Routes.Add("/webhooks/test", new TestDispatcher());
        NavigationMenu.Items.Add(page => new MenuItem("Webhooks", page.Url.To("/webhooks")));
    }

    private static string E(string? value) => InferenceJobsPages.E(value);

    /// <summary>The tenant ids <c>create-key</c> accepts: a test event for anything else would only create a secret for a typo.</summary>
    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex TenantPattern();

    private sealed class ListDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            var http = context.GetHttpContext();
            var store = http.RequestServices.GetRequiredService<WebhookStore>();
            var tenant = InferenceJobsPages.Query(context, "tenant");
            var job = InferenceJobsPages.Query(context, "job");
            var status = InferenceJobsPages.Query(context, "status");
            var limit = int.TryParse(InferenceJobsPages.Query(context, "limit"), NumberStyles.None, CultureInfo.InvariantCulture, out var l)
                ? Math.Clamp(l, 1, MaxLimit)
                : DefaultLimit;
            long? before = long.TryParse(InferenceJobsPages.Query(context, "before"), NumberStyles.None, CultureInfo.InvariantCulture, out var b) ? b : null;
            var pathBase = E(context.Request.PathBase);
            var token = DashboardForms.Token(context);

            var body = new StringBuilder().AppendOutcome(context).Append("<form method=\"get\">");
            foreach (var (name, value) in new[] { ("tenant", tenant), ("job", job) })
            {
                body.Append("<label>").Append(name).Append(" <input name=\"").Append(name).Append("\" value=\"").Append(E(value)).Append("\"></label> ");
            }

            body.Append("<label>status <select name=\"status\"><option value=\"\">any</option>");
            foreach (var outcome in WebhooksApi.Outcomes)
            {
                body.Append("<option").Append(outcome == status ? " selected" : string.Empty).Append('>').Append(E(outcome)).Append("</option>");
            }

            body.Append("</select></label> <label>limit <input name=\"limit\" value=\"").Append(limit).Append("\"></label> ")
                .Append("<button type=\"submit\">Filter</button></form>");

            var deliveries = await store.DeliveriesAsync(tenant, job, status, before, limit, http.RequestAborted).ConfigureAwait(false);
            body.Append("<h2>Deliveries</h2><p>").Append(deliveries.Count)
                .Append(" most recent delivery attempts. Redeliver sends an attempt's message again (same webhook id and body) as a new delivery.</p>")
                .Append("<table><thead><tr><th>Id</th><th>Time</th><th>Tenant</th><th>Job</th><th>Event</th><th>URL</th><th>Attempt</th>")
                .Append("<th>Status</th><th>Detail</th><th>Webhook id</th><th></th></tr></thead><tbody>");
            foreach (var d in deliveries)
            {
                var outcomeClass = d.Outcome switch { "delivered" => "succeeded", "failed" or "disabled" => "failed", _ => string.Empty };
                body.Append("<tr><td>").Append(d.Id).Append("</td><td>").Append(InferenceJobsPages.Time(d.At)).Append("</td><td>").Append(E(d.TenantId))
                    .Append("</td><td>");
                if (d.JobId.Length > 0)
                {
                    body.Append("<a href=\"").Append(pathBase).Append("/inference/job?id=").Append(E(InferenceJobsPages.Q(d.JobId))).Append("\"><code>")
                        .Append(E(d.JobId)).Append("</code></a>");
                }

                body.Append("</td><td>").Append(E(d.EventType)).Append("</td><td>").Append(E(d.Url)).Append("</td><td>").Append(d.Attempt)
                    .Append("</td><td class=\"").Append(outcomeClass).Append("\">").Append(E(d.Outcome)).Append("</td><td>").Append(E(d.Detail))
                    .Append("</td><td><code>").Append(E(d.MessageId)).Append("</code></td><td>");
                if (d.Redeliverable)
                {
                    body.AppendPostForm(context, token, "/webhooks/redeliver", "Redeliver", [("id", d.Id.ToString(CultureInfo.InvariantCulture))]);
                }

                body.Append("</td></tr>");
            }

            body.Append("</tbody></table>");
            if (deliveries.Count == limit)
            {
                body.Append("<p><a href=\"").Append(pathBase).Append("/webhooks?before=").Append(deliveries[^1].Id);
                foreach (var (name, value) in new[] { ("tenant", tenant), ("job", job), ("status", status) })
                {
                    if (value is not null)
                    {
                        body.Append("&amp;").Append(name).Append('=').Append(E(InferenceJobsPages.Q(value)));
                    }
                }

                body.Append("&amp;limit=").Append(limit).Append("\">Older deliveries →</a></p>");
            }

            var disabled = await store.DisabledUrlsAsync(tenant, DisabledLimit, http.RequestAborted).ConfigureAwait(false);
            body.Append("<h2>Disabled endpoints</h2><p>URLs whose receiver answered 410 Gone: nothing is delivered to them (attempts are recorded ")
                .Append("as skipped) until they are enabled again.</p>");
            if (disabled.Count == 0)
            {
                body.Append("<p>None.</p>");
            }
            else
            {
                body.Append("<table><thead><tr><th>Tenant</th><th>URL</th><th>Disabled</th><th>Reason</th><th></th></tr></thead><tbody>");
                foreach (var u in disabled)
                {
                    body.Append("<tr><td>").Append(E(u.TenantId)).Append("</td><td>").Append(E(u.Url)).Append("</td><td>")
                        .Append(InferenceJobsPages.Time(u.DisabledAt)).Append("</td><td>").Append(E(u.Reason)).Append("</td><td>")
                        .AppendPostForm(context, token, "/webhooks/enable", "Enable", [("tenant", u.TenantId), ("url", u.Url)])
                        .Append("</td></tr>");
                }

                body.Append("</tbody></table>");
            }

            body.Append("<h2>Send a test event</h2><p>A <code>webhook.test</code> event signed with the tenant's secret, delivered like any other ")
                .Append("(retries, 410, SSRF guard); it appears above as a delivery without a job.</p>")
                .AppendPostForm(context, token, "/webhooks/test", "Send test event", [], [("tenant", "tenant", tenant), ("URL", "url", null)]);
            await InferenceJobsPages.WritePageAsync(context, "Webhooks", body.ToString()).ConfigureAwait(false);
        }
    }

    private sealed class RedeliverDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            if (!DashboardForms.IsPost(context))
            {
                return;
            }

            var http = context.GetHttpContext();
            var id = await DashboardForms.FieldAsync(context, "id").ConfigureAwait(false);
            var message = long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var deliveryId)
                ? await http.RequestServices.GetRequiredService<WebhookStore>().MessageAsync(tenantId: null, deliveryId, http.RequestAborted).ConfigureAwait(false)
                : null;
            if (message is null)
            {
                DashboardForms.SeeOther(context, "/webhooks", $"There is no webhook delivery '{id}' that can be sent again.");
                return;
            }

            var hangfireJob = http.RequestServices.GetRequiredService<IBackgroundJobClient>()
                .Enqueue<WebhookDelivery>(d => d.DeliverAsync(message, 1, CancellationToken.None));
            DashboardForms.SeeOther(context, "/webhooks",
                $"Delivery {id} ({message.Type} to {message.Url}) queued again as Hangfire job {hangfireJob}, webhook id {message.MessageId}.",
                ("tenant", message.TenantId), ("job", WebhooksApi.NullIfEmpty(message.JobId)));
        }
    }

    private sealed class EnableDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            if (!DashboardForms.IsPost(context))
            {
                return;
            }

            var http = context.GetHttpContext();
            var tenant = await DashboardForms.FieldAsync(context, "tenant").ConfigureAwait(false);
            var url = await DashboardForms.FieldAsync(context, "url").ConfigureAwait(false);
            var outcome = tenant is null || url is null
                ? "A tenant and a URL are required."
                : await http.RequestServices.GetRequiredService<WebhookStore>().EnableAsync(tenant, url, http.RequestAborted).ConfigureAwait(false)
                    ? $"{url} of tenant {tenant} is enabled: deliveries go there again."
                    : $"{url} of tenant {tenant} was not disabled.";
            DashboardForms.SeeOther(context, "/webhooks", outcome, ("tenant", tenant));
        }
    }

    private sealed class TestDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            if (!DashboardForms.IsPost(context))
            {
                return;
            }

            var http = context.GetHttpContext();
            var services = http.RequestServices;
            var tenant = await DashboardForms.FieldAsync(context, "tenant").ConfigureAwait(false);
            var text = await DashboardForms.FieldAsync(context, "url").ConfigureAwait(false);
            string outcome;
            if (tenant is null || !TenantPattern().IsMatch(tenant))
            {
                outcome = "A tenant id is required: 1 to 64 letters, digits, '.', '_' or '-'.";
            }
            else if (WebhooksApi.ParseUrl(new WebhookUrlRequest(text)) is not { } url)
            {
                outcome = $"The URL must be an absolute http or https URL of at most {WebhooksApi.MaxUrlLength} characters.";
            }
            else if (await services.GetRequiredService<WebhookUrlCheck>()
                         .RefusalAsync(new WebhookSubscription(url.AbsoluteUri, [WebhooksApi.TestEventType]), http.RequestAborted)
                         .ConfigureAwait(false) is { } refused)
            {
                outcome = "Not sent: " + refused.ProblemDetails.Detail;
            }
            else
            {
                var message = WebhookMessage.Test(tenant, url.AbsoluteUri, services.GetRequiredService<TimeProvider>().GetUtcNow(),
                    services.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions);
                var hangfireJob = services.GetRequiredService<IBackgroundJobClient>().Enqueue<WebhookDelivery>(d => d.DeliverAsync(message, 1, CancellationToken.None));
                outcome = $"Test event {message.MessageId} for tenant {tenant} queued to {message.Url} as Hangfire job {hangfireJob}.";
            }

            DashboardForms.SeeOther(context, "/webhooks", outcome, ("tenant", tenant));
        }
    }
}
