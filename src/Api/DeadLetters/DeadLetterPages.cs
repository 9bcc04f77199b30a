using System.Text;
using Async.Serving.Api.Hangfire;
using Async.Serving.Contracts;
using Async.Serving.Jobs;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Antiforgery;
using static Async.Serving.Api.Hangfire.OperatorPage;

namespace Async.Serving.Api.DeadLetters;

/// <summary>
/// Dashboard page <c>/dead-letters</c>, inside Hangfire's layout: the jobs the sweeper ended because
/// their message was dead-lettered, newest first, each with a Requeue button (a POST to
/// <c>/dead-letters/requeue</c>, behind the dashboard's authorisation, cross-site check and antiforgery token).
/// </summary>
internal static class DeadLetterPages
{
    public const int Limit = 200;

    private static int _registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1)
        {
            return;
        }

        DashboardRoutes.Routes.Add("/dead-letters", new OperatorPageDispatcher(() => new ListPage()));
        DashboardRoutes.Routes.Add("/dead-letters/requeue", new RequeueDispatcher());
        AddMenuEntry();
    }

    private sealed class ListPage() : OperatorPage("Dead letters")
    {
        private IReadOnlyList<DeadLetterRecord> _records = [];
        private JobRecord?[] _jobs = [];
        private AntiforgeryTokenSet? _token;

        public override async Task LoadAsync(DashboardContext context, CancellationToken cancellationToken)
        {
            var services = context.GetHttpContext().RequestServices;
            _records = await services.GetRequiredService<DeadLetterStore>().RecentAsync(Limit).ConfigureAwait(false);
            var store = services.GetRequiredService<RedisJobStore>();
            _jobs = await Task.WhenAll(_records.Select(r => store.GetAsync(r.JobId, includeOutput: false))).ConfigureAwait(false);
            _token = DashboardForms.Token(context);
        }

        protected override void Render(StringBuilder html)
        {
            html.Append("<p class=\"text-muted\">").Append(_records.Count)
                .Append(" jobs ended because their message was dead-lettered (at most ").Append(Limit)
                .Append(", newest first). Requeue sends a job's message to its model's queue again, while its input is stored.</p>")
                .Append("<div class=\"table-responsive\"><table class=\"table table-hover\" id=\"dead-letters\"><thead><tr><th>Job</th><th>Status now</th>")
                .Append("<th>Queue</th><th>Dead-lettered</th><th>Reason</th><th></th></tr></thead><tbody>");
            for (var i = 0; i < _records.Count; i++)
            {
                var r = _records[i];
                var status = _jobs[i]?.Status ?? "gone";
                html.Append("<tr><td><a href=\"").Append(Href("/inference/job?id=" + Q(r.JobId))).Append("\"><code>").Append(E(r.JobId))
                    .Append("</code></a></td><td>").Append(StatusLabel(status)).Append("</td><td><code>").Append(E(r.Queue)).Append("</code></td><td>")
                    .Append(Time(r.At)).Append("</td><td>").Append(E(r.Reason)).Append("</td><td>");
                if (status == JobStatuses.Failed && r.MessageJson is not null)
                {
                    html.AppendPostForm(Context, _token, "/dead-letters/requeue", "Requeue", [("id", r.JobId)], style: "btn-primary");
                }

                html.Append("</td></tr>");
            }

            html.Append("</tbody></table></div>");
        }
    }

    private sealed class RequeueDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            if (!DashboardForms.IsPost(context))
            {
                return;
            }

            var id = await DashboardForms.FieldAsync(context, "id").ConfigureAwait(false);
            var (_, outcome) = id is null
                ? (false, "No job id was given.")
                : await context.GetHttpContext().RequestServices.GetRequiredService<DeadLetterRequeue>().RequeueAsync(id).ConfigureAwait(false);
            DashboardForms.SeeOther(context, "/dead-letters", outcome);
        }
    }
}
