using System.Globalization;
using System.Text;
using Async.Serving.Api.Hangfire;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Antiforgery;
using static Async.Serving.Api.Hangfire.OperatorPage;

namespace Async.Serving.Api.Auth;

/// <summary>
/// Dashboard page <c>/api-keys</c>, inside Hangfire's layout: every tenant's API keys (filter <c>tenant</c>, <c>limit</c>),
/// newest first, never a secret, each usable one with a Revoke button (a POST to
/// <c>/api-keys/revoke</c>, behind the dashboard's authorisation and cross-site protection). A
/// revocation reaches every API instance at once, as one made with <c>DELETE /v1/keys/{id}</c>;
/// unlike that route it may revoke a tenant's last admin key (the operator can make another with
/// <c>create-key</c>).
/// </summary>
internal static class ApiKeyPages
{
    public const int DefaultLimit = 200;
    public const int MaxLimit = 1000;

    private static int _registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1)
        {
            return;
        }

        DashboardRoutes.Routes.Add("/api-keys", new OperatorPageDispatcher(() => new ListPage()));
        DashboardRoutes.Routes.Add("/api-keys/revoke", new RevokeDispatcher());
        AddMenuEntry();
    }

    private sealed class ListPage() : OperatorPage("API keys")
    {
        private string? _tenant;
        private int _limit;
        private IReadOnlyList<ApiKeyRecord> _keys = [];
        private DateTimeOffset _now;
        private AntiforgeryTokenSet? _token;

        public override async Task LoadAsync(DashboardContext context, CancellationToken cancellationToken)
        {
            var services = context.GetHttpContext().RequestServices;
            _tenant = Query(context, "tenant");
            _limit = int.TryParse(Query(context, "limit"), NumberStyles.None, CultureInfo.InvariantCulture, out var l)
                ? Math.Clamp(l, 1, MaxLimit)
                : DefaultLimit;
            _keys = await services.GetRequiredService<ApiKeyStore>().ListAllAsync(_tenant, _limit, cancellationToken).ConfigureAwait(false);
            _now = services.GetRequiredService<TimeProvider>().GetUtcNow();
            _token = DashboardForms.Token(context);
        }

        protected override void Render(StringBuilder html)
        {
            AppendFilters(html, [("tenant", _tenant, null), ("limit", _limit.ToString(CultureInfo.InvariantCulture), null)]);
            html.Append("<p class=\"text-muted\">").Append(_keys.Count).Append(_tenant is null ? " most recent keys of all tenants" : " most recent keys of this tenant")
                .Append(", revoked and expired ones included. Secrets are never stored: only the prefix tells keys apart. ")
                .Append("Last used is exact to about a minute. The development key of the configuration is not listed.</p>")
                .Append("<div class=\"table-responsive\"><table class=\"table table-hover\" id=\"api-keys\"><thead><tr><th>Tenant</th><th>Id</th><th>Name</th>")
                .Append("<th>Prefix</th><th>Admin</th><th>Created</th><th>Expires</th><th>Last used</th><th>Revoked</th><th></th></tr></thead><tbody>");
            foreach (var key in _keys)
            {
                var id = key.Id.ToString("N");
                html.Append("<tr><td><a href=\"").Append(Href("/api-keys?tenant=" + Q(key.TenantId))).Append("\">").Append(E(key.TenantId))
                    .Append("</a></td><td><code>").Append(E(id)).Append("</code></td><td>").Append(E(key.Name))
                    .Append("</td><td><code>").Append(E(key.KeyPrefix)).Append("…</code></td><td>").Append(key.Admin ? "yes" : "no")
                    .Append("</td><td>").Append(Time(key.CreatedAt)).Append("</td><td").Append(key.ExpiresAt <= _now ? " class=\"text-danger\"" : string.Empty)
                    .Append('>').Append(Time(key.ExpiresAt)).Append("</td><td>").Append(Time(key.LastUsedAt)).Append("</td><td class=\"text-danger\">")
                    .Append(key.RevokedAt is null ? string.Empty : Time(key.RevokedAt)).Append("</td><td>");
                if (key.RevokedAt is null)
                {
                    html.AppendPostForm(Context, _token, "/api-keys/revoke", "Revoke", [("id", id), ("tenant", _tenant)], style: "btn-danger");
                }

                html.Append("</td></tr>");
            }

            html.Append("</tbody></table></div>");
        }
    }

    private sealed class RevokeDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            if (!DashboardForms.IsPost(context))
            {
                return;
            }

            var http = context.GetHttpContext();
            var id = await DashboardForms.FieldAsync(context, "id").ConfigureAwait(false);
            var tenant = await DashboardForms.FieldAsync(context, "tenant").ConfigureAwait(false);
            string outcome;
            if (!Guid.TryParse(id, out var keyId))
            {
                outcome = $"'{id}' is not an API key id.";
            }
            else if (await http.RequestServices.GetRequiredService<ApiKeyStore>().RevokeAsync(keyId, http.RequestAborted).ConfigureAwait(false))
            {
                // CancellationToken.None: the row is revoked, so the other instances must hear of it even if the browser left.
                await http.RequestServices.GetRequiredService<ApiKeyRevocations>().PublishAsync(keyId, CancellationToken.None).ConfigureAwait(false);
                outcome = $"API key {keyId:N} revoked: every API instance refuses it from now on.";
            }
            else
            {
                outcome = $"No API key {keyId:N} that is not revoked already.";
            }

            DashboardForms.SeeOther(context, "/api-keys", outcome, ("tenant", tenant));
        }
    }
}
