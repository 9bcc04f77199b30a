using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Async.Serving.Api.Hangfire;
using Hangfire;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using static Async.Serving.Api.Hangfire.OperatorPage;

namespace Async.Serving.Api.Webhooks;

/// <summary>
/// Dashboard page <c>/webhooks</c> (inside Hangfire's layout), the operator's side of the tenants'
/// webhook routes, across tenants: delivery attempts newest first (filters <c>tenant</c>, <c>job</c>, <c>status</c>,
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
    public const int BreakersShown = 200;

    private static int _registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1)
        {
            return;
        }

        DashboardRoutes.Routes.Add("/webhooks", new OperatorPageDispatcher(() => new ListPage()));
        DashboardRoutes.Routes.Add("/webhooks/redeliver", new RedeliverDispatcher());
        DashboardRoutes.Routes.Add("/webhooks/enable", new EnableDispatcher());
        DashboardRoutes.Routes.Add("/webhooks/test", new TestDispatcher());
        DashboardRoutes.Routes.Add("/webhooks/breakers/close", new CloseBreakerDispatcher());
        AddMenuEntry();
    }

    /// <summary>The tenant ids <c>create-key</c> accepts: a test event for anything else would only create a secret for a typo.</summary>
    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex TenantPattern();

    private sealed class ListPage() : OperatorPage("Webhooks")
    {
        private string? _tenant;
        private string? _job;
        private string? _status;
        private int _limit;
        private IReadOnlyList<DeliveryRecord> _deliveries = [];
        private IReadOnlyList<DisabledUrl> _disabled = [];
        private IReadOnlyList<Breakers.BreakerSnapshot> _breakers = [];
        private AntiforgeryTokenSet? _token;

        public override async Task LoadAsync(DashboardContext context, CancellationToken cancellationToken)
        {
            var store = context.GetHttpContext().RequestServices.GetRequiredService<WebhookStore>();
            _tenant = Query(context, "tenant");
            _job = Query(context, "job");
            _status = Query(context, "status");
            _limit = int.TryParse(Query(context, "limit"), NumberStyles.None, CultureInfo.InvariantCulture, out var l)
                ? Math.Clamp(l, 1, MaxLimit)
                : DefaultLimit;
            long? before = long.TryParse(Query(context, "before"), NumberStyles.None, CultureInfo.InvariantCulture, out var b) ? b : null;
            _deliveries = await store.DeliveriesAsync(_tenant, _job, _status, before, _limit, cancellationToken).ConfigureAwait(false);
            _disabled = await store.DisabledUrlsAsync(_tenant, DisabledLimit, cancellationToken).ConfigureAwait(false);
            _breakers = await context.GetHttpContext().RequestServices.GetRequiredService<WebhookBreakers>()
                .NotClosedAsync(BreakersShown, cancellationToken).ConfigureAwait(false);
            _token = DashboardForms.Token(context);
        }

        protected override void Render(StringBuilder html)
        {
            AppendBreakers(html);
            AppendFilters(html, [("tenant", _tenant, null), ("job", _job, null), ("status", _status, WebhooksApi.Outcomes)],
                $"<input type=\"hidden\" name=\"limit\" value=\"{_limit}\">");
            html.Append("<h2>Deliveries</h2><p class=\"text-muted\">").Append(_deliveries.Count).Append(_deliveries.Count == 1 ? " delivery attempt" : " delivery attempts")
                .Append(", newest first. Redeliver sends an attempt's message again (same webhook id and body) as a new delivery.</p>")
                .Append("<div class=\"table-responsive\"><table class=\"table table-hover\" id=\"webhook-deliveries\"><thead><tr><th>Id</th><th>Time</th>")
                .Append("<th>Tenant</th><th>Job</th><th>Event</th><th>URL</th><th>Attempt</th><th>Status</th><th>Detail</th><th>Webhook id</th><th></th></tr></thead><tbody>");
            foreach (var d in _deliveries)
            {
                html.Append("<tr><td>").Append(d.Id).Append("</td><td>").Append(Time(d.At)).Append("</td><td>").Append(E(d.TenantId)).Append("</td><td>");
                if (d.JobId.Length > 0)
                {
                    html.Append("<a href=\"").Append(Href("/inference/job?id=" + Q(d.JobId))).Append("\"><code>").Append(E(d.JobId)).Append("</code></a>");
                }

                html.Append("</td><td>").Append(E(d.EventType)).Append("</td><td style=\"word-break:break-all\">").Append(E(d.Url)).Append("</td><td>")
                    .Append(d.Attempt).Append("</td><td>").Append(StatusLabel(d.Outcome)).Append("</td><td>").Append(E(d.Detail))
                    .Append("</td><td style=\"word-break:break-all\"><code>").Append(E(d.MessageId)).Append("</code></td><td>");
                if (d.Redeliverable)
                {
                    html.AppendPostForm(Context, _token, "/webhooks/redeliver", "Redeliver", [("id", d.Id.ToString(CultureInfo.InvariantCulture))]);
                }

                html.Append("</td></tr>");
            }

            html.Append("</tbody></table></div><nav><ul class=\"pager\">");
            var filters = new StringBuilder();
            foreach (var (name, value) in new[] { ("tenant", _tenant), ("job", _job), ("status", _status) })
            {
                if (value is not null)
                {
                    filters.Append('&').Append(name).Append('=').Append(Q(value));
                }
            }

            filters.Append("&limit=").Append(_limit);
            html.Append("<li class=\"previous\"><a href=\"").Append(Href("/webhooks?" + filters.ToString(1, filters.Length - 1))).Append("\">Newest</a></li>");
            if (_deliveries.Count == _limit)
            {
                html.Append("<li class=\"next\"><a href=\"").Append(Href($"/webhooks?before={_deliveries[^1].Id}{filters}")).Append("\">Older deliveries →</a></li>");
            }
            else
            {
                html.Append("<li class=\"next disabled\"><span>Older deliveries →</span></li>");
            }

            html.Append("</ul></nav><h2>Disabled endpoints</h2><p class=\"text-muted\">URLs whose receiver answered 410 Gone: nothing is delivered to them ")
                .Append("(attempts are recorded as skipped) until they are enabled again.</p>");
            if (_disabled.Count == 0)
            {
                html.Append("<p>None.</p>");
            }
            else
            {
                html.Append("<table class=\"table table-hover\" id=\"disabled-endpoints\"><thead><tr><th>Tenant</th><th>URL</th><th>Disabled</th><th>Reason</th>")
                    .Append("<th></th></tr></thead><tbody>");
                foreach (var u in _disabled)
                {
                    html.Append("<tr><td>").Append(E(u.TenantId)).Append("</td><td>").Append(E(u.Url)).Append("</td><td>")
                        .Append(Time(u.DisabledAt)).Append("</td><td>").Append(E(u.Reason)).Append("</td><td>")
                        .AppendPostForm(Context, _token, "/webhooks/enable", "Enable", [("tenant", u.TenantId), ("url", u.Url)], style: "btn-success")
                        .Append("</td></tr>");
                }

                html.Append("</tbody></table>");
            }

            html.Append("<h2>Send a test event</h2><p class=\"text-muted\">A <code>webhook.test</code> event signed with the tenant's secret, delivered like ")
                .Append("any other (retries, 410, SSRF guard); it appears above as a delivery without a job.</p>")
                .AppendPostForm(Context, _token, "/webhooks/test", "Send test event", [], [("tenant", "tenant", _tenant), ("URL", "url", null)], style: "btn-primary");
        }
        /// <summary>
        /// The hosts whose circuit breaker is open or half-open, with their held deliveries (links to
        /// their scheduled Hangfire jobs) and a Close now button; one line when every breaker is closed.
        /// </summary>
        private void AppendBreakers(StringBuilder html)
        {
            html.Append("<h2>Circuit breakers</h2><p class=\"text-muted\">Hosts that failed repeatedly (5xx, timeouts, connection errors): ")
                .Append("nothing is sent to an open host until its cool-down ends; deliveries due meanwhile are held (scheduled again, ")
                .Append("not counted as attempts), then one probe goes. Close now sends to the host again and releases its held deliveries at once.</p>");
            if (_breakers.Count == 0)
            {
                html.Append("<p id=\"webhook-breakers-none\">Every breaker is closed.</p>");
                return;
            }

            html.Append("<table class=\"table table-hover\" id=\"webhook-breakers\"><thead><tr><th>Host</th><th>State</th><th>Opened</th>")
                .Append("<th>Cool-down ends</th><th>Last failure</th><th>Held deliveries</th><th></th></tr></thead><tbody>");
            foreach (var b in _breakers)
            {
                var state = b.State == Breakers.BreakerState.Open ? "open" : "half_open";
                html.Append("<tr><td>").Append(E(b.Name)).Append("</td><td>").Append(StatusLabel(state)).Append("</td><td>").Append(Time(b.OpenedAt))
                    .Append("</td><td>").Append(Time(b.State == Breakers.BreakerState.Open ? b.OpenUntil : b.ProbeUntil)).Append("</td><td>")
                    .Append(E(b.LastError)).Append("</td><td>").Append(b.HeldCount);
                foreach (var id in b.Held)
                {
                    html.Append(" <a href=\"").Append(Href("/jobs/details/" + Q(id))).Append("\">#").Append(E(id)).Append("</a>");
                }

                html.Append("</td><td>").AppendPostForm(Context, _token, "/webhooks/breakers/close", "Close now", [("host", b.Name)], style: "btn-warning")
                    .Append("</td></tr>");
            }

            html.Append("</tbody></table>");
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

    private sealed class CloseBreakerDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            if (!DashboardForms.IsPost(context))
            {
                return;
            }

            var http = context.GetHttpContext();
            var host = await DashboardForms.FieldAsync(context, "host").ConfigureAwait(false);
            string outcome;
            if (host is null)
            {
                outcome = "A host is required.";
            }
            else
            {
                var (wasOpen, released) = await http.RequestServices.GetRequiredService<WebhookBreakers>().CloseAsync(host, http.RequestAborted).ConfigureAwait(false);
                outcome = wasOpen
                    ? $"The circuit breaker of {host} is closed: deliveries go there again; {released} held deliveries were released."
                    : $"The circuit breaker of {host} was not open.";
            }

            DashboardForms.SeeOther(context, "/webhooks", outcome);
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
