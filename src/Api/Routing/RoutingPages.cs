using System.Globalization;
using System.Text;
using Async.Serving.Api.Hangfire;
using Async.Serving.Models;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Antiforgery;
using static Async.Serving.Api.Hangfire.OperatorPage;

namespace Async.Serving.Api.Routing;

/// <summary>
/// Dashboard page <c>/routing</c>, inside Hangfire's layout: each model name with its versions and
/// their weights, a form to set the weights and a <i>Rollback to N</i> button per version (POSTs to
/// <c>/routing/set</c>, behind the dashboard's authorisation, cross-site check and antiforgery token).
/// A change takes effect for the next submit, as one made with <c>PUT /v1/models/{name}/routing</c>.
/// </summary>
internal static class RoutingPages
{
    /// <summary>The form field of version <c>v</c>'s weight is <c>weight-v</c>.</summary>
    private const string WeightField = "weight-";

    private static int _registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1)
        {
            return;
        }

        DashboardRoutes.Routes.Add("/routing", new OperatorPageDispatcher(() => new ListPage()));
        DashboardRoutes.Routes.Add("/routing/set", new SetDispatcher());
        AddMenuEntry();
    }

    private sealed class ListPage() : OperatorPage("Model routing")
    {
        private List<(IReadOnlyList<ModelEntry> Versions, RoutingTable? Table)> _models = [];
        private AntiforgeryTokenSet? _token;

        public override async Task LoadAsync(DashboardContext context, CancellationToken cancellationToken)
        {
            var services = context.GetHttpContext().RequestServices;
            var repository = services.GetRequiredService<ModelRepository>();
            var tables = services.GetRequiredService<RoutingStore>();
            foreach (var name in repository.Names)
            {
                _models.Add((repository.Versions(name), await tables.GetAsync(name, cancellationToken).ConfigureAwait(false)));
            }

            _token = DashboardForms.Token(context);
        }

        protected override void Render(StringBuilder html)
        {
            html.Append("<p class=\"text-muted\">Submits that name a bare model (<code>resnet18</code>, not <code>resnet18@2</code>) are split between ")
                .Append("its versions by these weights; with a <code>routing_key</code> a caller keeps its version while the weights stay. ")
                .Append("Without weights every submit goes to the newest version. A change takes effect for the next submit.</p>")
                .Append("<div class=\"table-responsive\"><table class=\"table\" id=\"routing\"><thead><tr><th>Model</th><th>Pipeline</th>")
                .Append("<th>Versions: weight (share)</th><th>Updated</th><th>Set weights</th><th>Rollback</th></tr></thead><tbody>");
            foreach (var (versions, table) in _models)
            {
                var newest = versions[^1];
                html.Append("<tr id=\"routing-").Append(E(newest.Name)).Append("\"><td><code>").Append(E(newest.Name)).Append("</code></td><td>")
                    .Append(E(newest.Config.Pipeline)).Append("</td><td>");
                foreach (var v in versions)
                {
                    var share = table is null ? (v == newest ? 100 : 0) : table.Percent(v.Version);
                    html.Append("<div><code>").Append(E(v.Version)).Append("</code>: ")
                        .Append(table is null ? "—" : (table.Weights.TryGetValue(v.Version, out var w) ? w : 0).ToString(CultureInfo.InvariantCulture))
                        .Append(" (").Append(share.ToString("0.##", CultureInfo.InvariantCulture)).Append(" %)</div>");
                }

                html.Append(table is null ? "<div class=\"text-muted\">no weights: newest version</div>" : string.Empty)
                    .Append("</td><td>").Append(table is null ? "—" : Time(table.UpdatedAt) + "<br><small>" + E(table.UpdatedBy) + "</small>").Append("</td><td>");
                var sameKind = versions.Where(v => v.Config.Pipeline == newest.Config.Pipeline).ToList();
                html.AppendPostForm(Context, _token, "/routing/set", "Set", [("model", newest.Name)],
                    [.. sameKind.Select(v => ($"v{v.Version}", WeightField + v.Version,
                        (string?)(table is null ? (v == newest ? "100" : "0") : (table.Weights.TryGetValue(v.Version, out var w) ? w : 0).ToString(CultureInfo.InvariantCulture))))],
                    style: "btn-primary");
                html.Append("</td><td>");
                foreach (var v in sameKind)
                {
                    html.AppendPostForm(Context, _token, "/routing/set", "Rollback to " + v.Version, [("model", newest.Name), (WeightField + v.Version, "100")], style: "btn-warning")
                        .Append(' ');
                }

                html.Append("</td></tr>");
            }

            html.Append("</tbody></table></div>");
        }
    }

    /// <summary>Sets a model's weights from the <c>weight-{version}</c> fields (each version named gets its weight, others none).</summary>
    private sealed class SetDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            if (!DashboardForms.IsPost(context))
            {
                return;
            }

            var http = context.GetHttpContext();
            var services = http.RequestServices;
            var name = await DashboardForms.FieldAsync(context, "model").ConfigureAwait(false);
            var versions = name is null ? [] : services.GetRequiredService<ModelRepository>().Versions(name);
            string outcome;
            if (versions.Count == 0)
            {
                outcome = $"There is no model '{name}'.";
            }
            else
            {
                var form = await http.Request.ReadFormAsync(http.RequestAborted).ConfigureAwait(false);
                var weights = new Dictionary<string, int>(StringComparer.Ordinal);
                var unreadable = new List<string>();
                foreach (var (field, value) in form.Where(f => f.Key.StartsWith(WeightField, StringComparison.Ordinal)))
                {
                    var version = field[WeightField.Length..];
                    if (int.TryParse(value.ToString().Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var weight))
                    {
                        weights[version] = weight;
                    }
                    else
                    {
                        unreadable.Add(version);
                    }
                }

                var (checkedWeights, problem) = RoutingApi.Check(versions, weights);
                if (unreadable.Count > 0)
                {
                    outcome = $"Not a whole number: the weight of version {string.Join(", ", unreadable)}.";
                }
                else if (problem is not null)
                {
                    outcome = Describe(problem);
                }
                else
                {
                    var table = new RoutingTable(checkedWeights!, DateTimeOffset.FromUnixTimeMilliseconds(services.GetRequiredService<TimeProvider>().GetUtcNow().ToUnixTimeMilliseconds()), "dashboard");
                    // CancellationToken.None: once asked, the change is made and announced even if the browser left.
                    await services.GetRequiredService<RoutingStore>().SetAsync(versions[0].Name, table, CancellationToken.None).ConfigureAwait(false);
                    outcome = $"{versions[0].Name} now routes " + string.Join(", ", versions.Where(v => checkedWeights!.ContainsKey(v.Version))
                        .Select(v => $"{v.Version}: {table.Percent(v.Version).ToString("0.##", CultureInfo.InvariantCulture)} %")) + ", from the next submit.";
                }
            }

            DashboardForms.SeeOther(context, "/routing", outcome);
        }

        private static string Describe(Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult problem)
        {
            var details = problem.ProblemDetails;
            var errors = details.Extensions.TryGetValue("errors", out var e) && e is IDictionary<string, string[]> map
                ? " " + string.Join(" ", map.Select(kv => $"{kv.Key}: {string.Join(" ", kv.Value)}"))
                : string.Empty;
            return $"Not changed: {details.Title}{errors}";
        }
    }
}
