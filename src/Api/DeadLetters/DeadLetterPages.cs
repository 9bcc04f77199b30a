using System.Net;
using System.Text;
using Async.Serving.Api.Hangfire;
using Async.Serving.Jobs;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Antiforgery;

namespace Async.Serving.Api.DeadLetters;

/// <summary>
/// Dashboard page <c>/dead-letters</c>: the jobs the sweeper ended because their message was
/// dead-lettered, newest first, each with a Requeue button (a POST to <c>/dead-letters/requeue</c>,
/// behind the dashboard's authorisation and its cross-site request protection).
/// </summary>
internal static class DeadLetterPages
{
    private static int _registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1)
        {
            return;
        }

        DashboardRoutes.Routes.Add("/dead-letters", new ListDispatcher());
        DashboardRoutes.Routes.Add("/dead-letters/requeue", new RequeueDispatcher());
        NavigationMenu.Items.Add(page => new MenuItem("Dead letters", page.Url.To("/dead-letters")));
    }

    private sealed class ListDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            var http = context.GetHttpContext();
            var records = await http.RequestServices.GetRequiredService<DeadLetterStore>().RecentAsync(200).ConfigureAwait(false);
            var store = http.RequestServices.GetRequiredService<RedisJobStore>();
            var jobs = await Task.WhenAll(records.Select(r => store.GetAsync(r.JobId, includeOutput: false))).ConfigureAwait(false);
            // The form carries the antiforgery token where the dashboard checks one.
            var token = http.RequestServices.GetService<IAntiforgery>()?.GetAndStoreTokens(http);
            var body = new StringBuilder();
            if (InferenceJobsPages.Query(context, "outcome") is { } outcome)
            {
                body.Append("<p><strong>").Append(InferenceJobsPages.E(outcome)).Append("</strong></p>");
            }

            body.Append("<p>").Append(records.Count).Append(" jobs ended because their message was dead-lettered. ")
                .Append("Requeue sends a job's message to its model's queue again, while its input is stored.</p>")
                .Append("<table><thead><tr><th>Job</th><th>Status now</th><th>Queue</th><th>Dead-lettered</th><th>Reason</th><th></th></tr></thead><tbody>");
            for (var i = 0; i < records.Count; i++)
            {
                var r = records[i];
                var status = jobs[i]?.Status ?? "gone";
                body.Append("<tr><td><a href=\"").Append(InferenceJobsPages.E(context.Request.PathBase)).Append("/inference/job?id=")
                    .Append(InferenceJobsPages.E(InferenceJobsPages.Q(r.JobId))).Append("\"><code>").Append(InferenceJobsPages.E(r.JobId))
                    .Append("</code></a></td><td class=\"").Append(InferenceJobsPages.E(status)).Append("\">").Append(InferenceJobsPages.E(status))
                    .Append("</td><td><code>").Append(InferenceJobsPages.E(r.Queue)).Append("</code></td><td>").Append(InferenceJobsPages.Time(r.At))
                    .Append("</td><td>").Append(InferenceJobsPages.E(r.Reason)).Append("</td><td>");
                if (status == JobStatuses.Failed && r.MessageJson is not null)
                {
                    body.Append("<form method=\"post\" action=\"").Append(InferenceJobsPages.E(context.Request.PathBase)).Append("/dead-letters/requeue\">")
                        .Append("<input type=\"hidden\" name=\"id\" value=\"").Append(InferenceJobsPages.E(r.JobId)).Append("\">");
                    if (token?.RequestToken is { } value)
                    {
                        body.Append("<input type=\"hidden\" name=\"").Append(InferenceJobsPages.E(token.FormFieldName)).Append("\" value=\"")
                            .Append(InferenceJobsPages.E(value)).Append("\">");
                    }

                    body.Append("<button type=\"submit\">Requeue</button></form>");
                }

                body.Append("</td></tr>");
            }

            body.Append("</tbody></table>");
            await InferenceJobsPages.WritePageAsync(context, "Dead letters", body.ToString()).ConfigureAwait(false);
        }
    }

    private sealed class RequeueDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            var http = context.GetHttpContext();
            if (!HttpMethods.IsPost(http.Request.Method))
            {
                http.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
                return;
            }

            var id = (await context.Request.GetFormValuesAsync("id").ConfigureAwait(false)).FirstOrDefault()?.Trim();
            var (_, outcome) = string.IsNullOrEmpty(id)
                ? (false, "No job id was given.")
                : await http.RequestServices.GetRequiredService<DeadLetterRequeue>().RequeueAsync(id).ConfigureAwait(false);
            http.Response.StatusCode = StatusCodes.Status303SeeOther;
            http.Response.Headers.Location = $"{context.Request.PathBase}/dead-letters?outcome={WebUtility.UrlEncode(outcome)}";
        }
    }
}
