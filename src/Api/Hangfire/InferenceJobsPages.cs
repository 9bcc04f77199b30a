using System.Globalization;
using System.Text;
using Async.Serving.Api.Ledger;
using Async.Serving.Api.Webhooks;
using Async.Serving.Breakers;
using Async.Serving.Contracts;
using Async.Serving.Contracts.Outputs;
using Async.Serving.Jobs;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Antiforgery;
using static Async.Serving.Api.Hangfire.OperatorPage;

namespace Async.Serving.Api.Hangfire;

/// <summary>
/// Dashboard pages over the job ledger, inside Hangfire's layout: <c>/inference</c> lists jobs newest
/// first (filters <c>status</c>, <c>pipeline</c>, <c>model</c>, <c>tenant</c>; pages of <c>limit</c>
/// with keyset cursors <c>before</c> and <c>after</c>), with queue and execution times and the trace
/// id; <c>/inference/job?id=</c> shows one job, its status changes and webhook deliveries, and a
/// Cancel button while it is queued or running (a POST to <c>/inference/job/cancel</c>, behind the
/// dashboard's authorisation, cross-site check and antiforgery token). Above the list, the model
/// versions whose circuit breaker is open or half-open, each with a Close now button (<c>/inference/models/close</c>).
/// </summary>
internal static partial class InferenceJobsPages
{
    public const int DefaultLimit = 50;
    public const int MaxLimit = 500;

    private static readonly string[] Statuses =
        [JobStatuses.Queued, JobStatuses.Running, JobStatuses.Succeeded, JobStatuses.Failed, JobStatuses.Cancelled, JobStatuses.Expired];

    private static int _registered;

    /// <summary>Adds the routes and the menu entry, once per process (Hangfire's route table is static).</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1)
        {
            return;
        }

        DashboardRoutes.Routes.Add("/inference", new OperatorPageDispatcher(() => new ListPage()));
        DashboardRoutes.Routes.Add("/inference/job", new OperatorPageDispatcher(() => new JobPage()));
        DashboardRoutes.Routes.Add("/inference/job/cancel", new CancelDispatcher());
        DashboardRoutes.Routes.Add("/inference/models/close", new CloseModelBreakerDispatcher());
        AddMenuEntry();
    }

    /// <summary>The cache cell of a job (list and job page): the ledger's <c>cache</c>, off for rows without one.</summary>
    internal static string CacheCell(LedgerRow row) => row.Cache switch
    {
        "hit" => "<span class=\"label label-success\">hit</span>",
        "miss" => "<span class=\"label label-default\">miss</span>",
        _ => "<span class=\"text-muted\">off</span>",
    };

    /// <summary>
    /// The trace id cell of a job (list and job page): the ledger's <c>trace_id</c>, the job's
    /// OpenTelemetry trace (docs/observability.md), encoded; a dash for rows written before tracing.
    /// </summary>
    internal static string TraceIdCell(LedgerRow row) =>
        row.TraceId is { Length: > 0 } traceId ? $"<code>{E(traceId)}</code>" : "—";

    /// <summary>Time from creation to start, as the API's <c>queue_ms</c>.</summary>
    internal static TimeSpan? QueueTime(LedgerRow row) => row.StartedAt - row.CreatedAt;

    /// <summary>Time from start to the end, as the API's <c>execution_ms</c>.</summary>
    internal static TimeSpan? ExecutionTime(LedgerRow row) => row.CompletedAt - row.StartedAt;

    private static string JobHref(DashboardContext context, string jobId) =>
        E(context.Request.PathBase + "/inference/job?id=" + Q(jobId));

    private sealed class ListPage() : OperatorPage("Inference jobs")
    {
        private LedgerQuery _query = null!;
        private List<LedgerRow> _rows = [];
        private bool _hasNewer;
        private bool _hasOlder;
        private IReadOnlyList<BreakerSnapshot> _breakers = [];
        private AntiforgeryTokenSet? _token;

        public override async Task LoadAsync(DashboardContext context, CancellationToken cancellationToken)
        {
            _breakers = await context.GetHttpContext().RequestServices.GetRequiredService<ModelBreakers>().NotClosedAsync(100, cancellationToken).ConfigureAwait(false);
            _token = _breakers.Count > 0 ? DashboardForms.Token(context) : null;
            var limit = int.TryParse(Query(context, "limit"), NumberStyles.None, CultureInfo.InvariantCulture, out var l)
                ? Math.Clamp(l, 1, MaxLimit)
                : DefaultLimit;
            var before = LedgerCursor.Parse(Query(context, "before"));
            var after = before is null ? LedgerCursor.Parse(Query(context, "after")) : null;
            _query = new LedgerQuery(Query(context, "status"), Query(context, "pipeline"), Query(context, "model"), Query(context, "tenant"),
                limit + 1, before, after);
            _rows = await context.GetHttpContext().RequestServices.GetRequiredService<LedgerStore>().ListAsync(_query, cancellationToken).ConfigureAwait(false);
            // One row more than shown tells whether another page lies that way; the other way lies the cursor's own row.
            var more = _rows.Count > limit;
            if (after is not null)
            {
                _hasNewer = more;
                _hasOlder = true;
                _rows = more ? _rows[1..] : _rows;
            }
            else
            {
                _hasOlder = more;
                _hasNewer = before is not null;
                _rows = more ? _rows[..limit] : _rows;
            }
        }

        protected override void Render(StringBuilder html)
        {
            if (_breakers.Count > 0)
            {
                html.Append("<h2>Unavailable models</h2><p class=\"text-muted\">Model versions whose batches kept failing: while open, their jobs fail ")
                    .Append("with <code>model_unavailable</code> and submits answer 503; after the cool-down the next job tries the model (half-open). ")
                    .Append("Close now makes the version take jobs again at once.</p><table class=\"table table-hover\" id=\"model-breakers\"><thead><tr>")
                    .Append("<th>Model</th><th>State</th><th>Opened</th><th>Cool-down ends</th><th>Last failure</th><th></th></tr></thead><tbody>");
                foreach (var b in _breakers)
                {
                    html.Append("<tr><td>").Append(E(b.Name)).Append("</td><td>").Append(StatusLabel(b.State == BreakerState.Open ? "open" : "half_open"))
                        .Append("</td><td>").Append(Time(b.OpenedAt)).Append("</td><td>").Append(Time(b.State == BreakerState.Open ? b.OpenUntil : b.ProbeUntil))
                        .Append("</td><td>").Append(E(b.LastError)).Append("</td><td>")
                        .AppendPostForm(Context, _token, "/inference/models/close", "Close now", [("model", b.Name)], style: "btn-warning").Append("</td></tr>");
                }

                html.Append("</tbody></table><h2>Jobs</h2>");
            }

            AppendFilters(html, [
                ("status", _query.Status, Statuses),
                ("pipeline", _query.Pipeline, PipelineNames.All),
                ("model", _query.Model, null),
                ("tenant", _query.TenantId, null),
            ], $"<input type=\"hidden\" name=\"limit\" value=\"{_query.Limit - 1}\">");
            html.Append("<p class=\"text-muted\">").Append(_rows.Count.ToString(CultureInfo.InvariantCulture)).Append(_rows.Count == 1 ? " job" : " jobs")
                .Append(" from the ledger, newest first. Queue time is from creation to start, execution time from start to the end.</p>")
                .Append("<div class=\"table-responsive\"><table class=\"table table-hover\" id=\"inference-jobs\"><thead><tr><th>Job</th><th>Status</th>")
                .Append("<th>Tenant</th><th>Pipeline</th><th>Model</th><th>Priority</th><th>Created</th><th>Queue time</th><th>Execution time</th>")
                .Append("<th>Cache</th><th>Attempts</th><th>Trace id</th><th>Error</th></tr></thead><tbody>");
            foreach (var row in _rows)
            {
                html.Append("<tr><td><a href=\"").Append(JobHref(Context, row.JobId)).Append("\"><code>").Append(E(row.JobId)).Append("</code></a></td><td>")
                    .Append(StatusLabel(row.Status)).Append("</td><td>").Append(E(row.TenantId)).Append("</td><td>").Append(E(row.Pipeline))
                    .Append("</td><td>").Append(E(row.Model)).Append("</td><td>").Append(E(row.Priority ?? "—")).Append("</td><td>").Append(Time(row.CreatedAt)).Append("</td><td>")
                    .Append(Ms(QueueTime(row))).Append("</td><td>").Append(Ms(ExecutionTime(row))).Append("</td><td>")
                    .Append(CacheCell(row)).Append("</td><td>")
                    .Append(row.Attempts.ToString(CultureInfo.InvariantCulture)).Append("</td><td>").Append(TraceIdCell(row)).Append("</td><td>")
                    .Append(E(row.ErrorCode)).Append("</td></tr>");
            }

            html.Append("</tbody></table></div><nav><ul class=\"pager\">");
            AppendPageLink(html, "previous", "← Newer", _hasNewer && _rows.Count > 0 ? ("after", LedgerCursor.Of(_rows[0])) : null);
            AppendPageLink(html, "next", "Older →", _hasOlder && _rows.Count > 0 ? ("before", LedgerCursor.Of(_rows[^1])) : null);
            html.Append("</ul></nav>");
        }

        private void AppendPageLink(StringBuilder html, string side, string text, (string Name, LedgerCursor Cursor)? target)
        {
            if (target is not { } t)
            {
                html.Append("<li class=\"").Append(side).Append(" disabled\"><span>").Append(E(text)).Append("</span></li>");
                return;
            }

            var url = new StringBuilder("/inference?").Append(t.Name).Append('=').Append(Q(t.Cursor.Format()))
                .Append("&limit=").Append((_query.Limit - 1).ToString(CultureInfo.InvariantCulture));
            foreach (var (name, value) in new[] { ("status", _query.Status), ("pipeline", _query.Pipeline), ("model", _query.Model), ("tenant", _query.TenantId) })
            {
                if (value is not null)
                {
                    url.Append('&').Append(name).Append('=').Append(Q(value));
                }
            }

            html.Append("<li class=\"").Append(side).Append("\"><a href=\"").Append(Href(url.ToString())).Append("\">").Append(E(text)).Append("</a></li>");
        }
    }

    private sealed class JobPage() : OperatorPage("Job")
    {
        private string? _id;
        private LedgerRow? _row;
        private JobRecord? _live;
        private List<LedgerEvent> _events = [];
        private IReadOnlyList<DeliveryRecord> _deliveries = [];
        private AntiforgeryTokenSet? _token;

        public override async Task LoadAsync(DashboardContext context, CancellationToken cancellationToken)
        {
            var services = context.GetHttpContext().RequestServices;
            _id = Query(context, "id");
            var found = _id is null ? null : await services.GetRequiredService<LedgerStore>().GetAsync(_id, cancellationToken).ConfigureAwait(false);
            if (found is not { } job)
            {
                Title = "Job not found";
                StatusCode = StatusCodes.Status404NotFound;
                return;
            }

            (_row, _events) = job;
            Title = "Job " + _row.JobId;
            // The job store is ahead of the ledger (written a moment later): it decides whether Cancel applies.
            _live = await services.GetRequiredService<RedisJobStore>().GetAsync(_row.JobId, includeOutput: false).ConfigureAwait(false);
            _deliveries = await services.GetRequiredService<WebhookStore>()
                .DeliveriesAsync(tenantId: null, _row.JobId, outcome: null, before: null, WebhookPages.MaxLimit, cancellationToken).ConfigureAwait(false);
            _token = DashboardForms.Token(context);
        }

        protected override void Render(StringBuilder html)
        {
            if (_row is not { } row)
            {
                html.Append("<div class=\"alert alert-warning\">The ledger has no job <code>").Append(E(_id)).Append("</code>.</div>")
                    .Append("<p><a href=\"").Append(Href("/inference")).Append("\">Inference jobs</a></p>");
                return;
            }

            html.Append("<ol class=\"breadcrumb\"><li><a href=\"").Append(Href("/inference")).Append("\">Inference jobs</a></li><li><a href=\"")
                .Append(Href("/inference?tenant=" + Q(row.TenantId))).Append("\">").Append(E(row.TenantId)).Append("</a></li><li class=\"active\">")
                .Append(E(row.JobId)).Append("</li></ol>");
            var status = _live?.Status ?? row.Status;
            if (!JobStatuses.IsTerminal(status))
            {
                html.Append("<p>");
                html.AppendPostForm(Context, _token, "/inference/job/cancel", "Cancel job", [("id", row.JobId)], style: "btn-danger");
                html.Append(" <span class=\"text-muted\">A queued job never runs; a running one is stopped by its worker (as <code>POST /v1/jobs/{id}/cancel</code>).</span></p>");
            }

            html.Append("<table class=\"table table-condensed\" id=\"inference-job\"><tbody>");
            void Line(string name, string encodedValue) => html.Append("<tr><th style=\"width:12em\">").Append(name).Append("</th><td>").Append(encodedValue).Append("</td></tr>");
            Line("Job", $"<code>{E(row.JobId)}</code>");
            Line("Status", $"<span id=\"job-status\">{StatusLabel(status)}</span>" + (_live is null
                ? " <span class=\"text-muted\">(from the ledger: the job store no longer holds the job)</span>"
                : _live.ErrorMessage is { Length: > 0 } message ? $" <span class=\"text-muted\">{E(message)}</span>" : string.Empty));
            Line("Tenant", E(row.TenantId));
            Line("Pipeline", E(row.Pipeline));
            Line("Model", E(row.Model));
            Line("Priority", E(row.Priority ?? "—"));
            Line("Created", Time(row.CreatedAt));
            Line("Started", Time(row.StartedAt));
            Line("Completed", Time(row.CompletedAt));
            Line("Queue time", Ms(QueueTime(row)));
            Line("Execution time", Ms(ExecutionTime(row)));
            Line("Attempts", row.Attempts.ToString(CultureInfo.InvariantCulture));
            Line("Input bytes", row.InputBytes.ToString("N0", CultureInfo.InvariantCulture));
            Line("Compute ms", row.ComputeMs?.ToString(CultureInfo.InvariantCulture) ?? "—");
            Line("Cache", CacheCell(row) + (row.SavedMs is { } saved && row.Cache == "hit"
                ? $" <span class=\"text-muted\">({saved.ToString(CultureInfo.InvariantCulture)} ms of compute saved)</span>" : string.Empty));
            Line("Trace id", TraceIdCell(row));
            Line("Error", E(row.ErrorCode));
            Line("Ledger updated", Time(row.UpdatedAt));
            html.Append("</tbody></table><h3>Timeline</h3><table class=\"table table-condensed\"><thead><tr><th>Time</th><th>Status</th></tr></thead><tbody>");
            foreach (var change in _events)
            {
                html.Append("<tr><td>").Append(Time(change.At)).Append("</td><td>").Append(StatusLabel(change.Status)).Append("</td></tr>");
            }

            html.Append("</tbody></table><h3>Webhook deliveries</h3>");
            if (_deliveries.Count == 0)
            {
                html.Append("<p>None.</p>");
            }
            else
            {
                html.Append("<table class=\"table table-condensed\"><thead><tr><th>Id</th><th>Time</th><th>Event</th><th>URL</th><th>Attempt</th>")
                    .Append("<th>Status</th><th>Detail</th><th></th></tr></thead><tbody>");
                foreach (var d in _deliveries)
                {
                    html.Append("<tr><td>").Append(d.Id.ToString(CultureInfo.InvariantCulture)).Append("</td><td>").Append(Time(d.At)).Append("</td><td>")
                        .Append(E(d.EventType)).Append("</td><td style=\"word-break:break-all\">").Append(E(d.Url)).Append("</td><td>").Append(d.Attempt.ToString(CultureInfo.InvariantCulture))
                        .Append("</td><td>").Append(StatusLabel(d.Outcome)).Append("</td><td>").Append(E(d.Detail)).Append("</td><td>");
                    if (d.Redeliverable)
                    {
                        html.AppendPostForm(Context, _token, "/webhooks/redeliver", "Redeliver", [("id", d.Id.ToString(CultureInfo.InvariantCulture))]);
                    }

                    html.Append("</td></tr>");
                }

                html.Append("</tbody></table>");
            }

            // Each delivery attempt is also a Hangfire job, with its result.
            html.Append("<p><a href=\"").Append(Href("/webhooks?job=" + Q(row.JobId))).Append("\">This job's deliveries on the webhooks page</a> · <a href=\"")
                .Append(Href("/jobs/failed")).Append("\">Failed Hangfire jobs</a></p>");
        }
    }

    /// <summary>An operator's close of a model version's breaker: it takes jobs again at once.</summary>
    private sealed class CloseModelBreakerDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            if (!DashboardForms.IsPost(context))
            {
                return;
            }

            var http = context.GetHttpContext();
            var model = await DashboardForms.FieldAsync(context, "model").ConfigureAwait(false);
            var outcome = model is null
                ? "A model is required."
                : await http.RequestServices.GetRequiredService<ModelBreakers>().CloseAsync(model, http.RequestAborted).ConfigureAwait(false)
                    ? $"The circuit breaker of {model} is closed: it takes jobs again."
                    : $"The circuit breaker of {model} was not open.";
            DashboardForms.SeeOther(context, "/inference", outcome);
        }
    }

    /// <summary>Cancels a job as <c>POST /v1/jobs/{id}/cancel</c> does (the job store's cancel), then shows the job with the outcome.</summary>
    private sealed partial class CancelDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            if (!DashboardForms.IsPost(context))
            {
                return;
            }

            var http = context.GetHttpContext();
            var id = await DashboardForms.FieldAsync(context, "id").ConfigureAwait(false);
            if (id is null)
            {
                DashboardForms.SeeOther(context, "/inference", "No job id was given.");
                return;
            }

            var outcome = await http.RequestServices.GetRequiredService<RedisJobStore>().CancelAsync(id).ConfigureAwait(false);
            LogCancel(http.RequestServices.GetRequiredService<ILogger<CancelDispatcher>>(), id, http.User.Identity?.Name ?? "unknown", outcome);
            DashboardForms.SeeOther(context, "/inference/job", outcome switch
            {
                CancelOutcome.Cancelled => $"Job {id} cancelled: it will not run.",
                CancelOutcome.Requested => $"Cancel of job {id} requested: its worker stops it, and it ends cancelled.",
                CancelOutcome.AlreadyTerminal => $"Job {id} has already finished: only queued or running jobs can be cancelled.",
                _ => $"There is no job {id} in the job store (its record may have expired).",
            }, ("id", id));
        }

        [LoggerMessage(EventId = 462, Level = LogLevel.Information, Message = "Dashboard cancel of job {JobId} by {User}: {Outcome}")]
        private static partial void LogCancel(ILogger logger, string jobId, string user, CancelOutcome outcome);
    }
}
