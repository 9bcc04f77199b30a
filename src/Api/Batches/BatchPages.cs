using System.Text;
using Async.Serving.Api.Hangfire;
using Hangfire.Dashboard;
using static Async.Serving.Api.Hangfire.OperatorPage;

namespace Async.Serving.Api.Batches;

/// <summary>Dashboard page <c>/batches</c>, inside Hangfire's layout: the newest batches of every tenant with their lines counted by status.</summary>
internal static class BatchPages
{
    public const int Limit = 100;

    private static int _registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1)
        {
            return;
        }

        DashboardRoutes.Routes.Add("/batches", new OperatorPageDispatcher(() => new ListPage()));
        AddMenuEntry();
    }

    private sealed class ListPage() : OperatorPage("Batches")
    {
        private IReadOnlyList<BatchRecord> _batches = [];

        public override async Task LoadAsync(DashboardContext context, CancellationToken cancellationToken)
        {
            var store = context.GetHttpContext().RequestServices.GetRequiredService<BatchStore>();
            _batches = await store.ListAsync(tenantId: null, before: null, Limit, cancellationToken).ConfigureAwait(false);
        }

        protected override void Render(StringBuilder html)
        {
            html.Append("<p class=\"text-muted\">The newest ").Append(_batches.Count).Append(" batches of every tenant (at most ").Append(Limit)
                .Append("), their lines by status: pending lines are not jobs yet, errored lines never became one.</p>")
                .Append("<div class=\"table-responsive\"><table class=\"table table-hover\" id=\"batches\"><thead><tr><th>Batch</th><th>Tenant</th><th>Status</th>")
                .Append("<th>Lines</th>");
            foreach (var status in BatchLineStatuses.All)
            {
                html.Append("<th>").Append(E(status)).Append("</th>");
            }

            html.Append("<th>Progress</th><th>Created</th><th>Ended</th></tr></thead><tbody>");
            foreach (var batch in _batches)
            {
                var resource = BatchResource.From(batch);
                html.Append("<tr><td><code>").Append(E(batch.Id)).Append("</code></td><td>").Append(E(batch.TenantId)).Append("</td><td>")
                    .Append(E(batch.Status)).Append("</td><td>").Append(batch.Total).Append("</td>");
                foreach (var status in BatchLineStatuses.All)
                {
                    html.Append("<td>").Append(batch.Counts.TryGetValue(status, out var n) ? n : 0).Append("</td>");
                }

                html.Append("<td>").Append(resource.Progress.ToString("P0", System.Globalization.CultureInfo.InvariantCulture)).Append("</td><td>")
                    .Append(Time(batch.CreatedAt)).Append("</td><td>").Append(Time(batch.CompletedAt)).Append("</td></tr>");
            }

            html.Append("</tbody></table></div>");
        }
    }
}
