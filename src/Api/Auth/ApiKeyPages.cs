using System.Globalization;
using System.Text;
using Async.Serving.Api.Hangfire;
using Hangfire.Dashboard;

namespace Async.Serving.Api.Auth;

/// <summary>
/// Dashboard page <c>/api-keys</c>: every tenant's API keys (filter <c>tenant</c>, <c>limit</c>),
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

        DashboardRoutes.Routes.Add("/api-keys", new ListDispatcher());
        DashboardRoutes.Routes.Add("/api-keys/revoke", new RevokeDispatcher());
        NavigationMenu.Items.Add(page => new MenuItem("API keys", page.Url.To("/api-keys")));
    }

    private static string E(string? value) => InferenceJobsPages.E(value);

    private sealed class ListDispatcher : IDashboardDispatcher
    {
        public async Task Dispatch(DashboardContext context)
        {
            var http = context.GetHttpContext();
            var tenant = InferenceJobsPages.Query(context, "tenant");
            var limit = int.TryParse(InferenceJobsPages.Query(context, "limit"), NumberStyles.None, CultureInfo.InvariantCulture, out var l)
                ? Math.Clamp(l, 1, MaxLimit)
                : DefaultLimit;
            var keys = await http.RequestServices.GetRequiredService<ApiKeyStore>().ListAllAsync(tenant, limit, http.RequestAborted).ConfigureAwait(false);
            var now = http.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();
            var token = DashboardForms.Token(context);

            var body = new StringBuilder().AppendOutcome(context)
                .Append("<form method=\"get\"><label>tenant <input name=\"tenant\" value=\"").Append(E(tenant)).Append("\"></label> ")
                .Append("<label>limit <input name=\"limit\" value=\"").Append(limit).Append("\"></label> <button type=\"submit\">Filter</button></form>")
                .Append("<p>").Append(keys.Count).Append(tenant is null ? " most recent keys of all tenants" : " most recent keys of this tenant")
                .Append(", revoked and expired ones included. Secrets are never stored: only the prefix tells keys apart. ")
                .Append("Last used is exact to about a minute. The development key of the configuration is not listed.</p>")
                .Append("<table><thead><tr><th>Tenant</th><th>Id</th><th>Name</th><th>Prefix</th><th>Admin</th><th>Created</th><th>Expires</th>")
                .Append("<th>Last used</th><th>Revoked</th><th></th></tr></thead><tbody>");
            foreach (var key in keys)
            {
                var id = key.Id.ToString("N");
                body.Append("<tr><td><a href=\"").Append(E(context.Request.PathBase)).Append("/api-keys?tenant=").Append(E(InferenceJobsPages.Q(key.TenantId)))
                    .Append("\">").Append(E(key.TenantId)).Append("</a></td><td><code>").Append(E(id)).Append("</code></td><td>").Append(E(key.Name))
                    .Append("</td><td><code>").Append(E(key.KeyPrefix)).Append("…</code></td><td>").Append(key.Admin ? "yes" : "no")
                    .Append("</td><td>").Append(InferenceJobsPages.Time(key.CreatedAt)).Append("</td><td class=\"")
                    .Append(key.ExpiresAt <= now ? "expired" : string.Empty).Append("\">").Append(InferenceJobsPages.Time(key.ExpiresAt))
                    .Append("</td><td>").Append(InferenceJobsPages.Time(key.LastUsedAt)).Append("</td><td class=\"failed\">")
                    .Append(key.RevokedAt is null ? string.Empty : InferenceJobsPages.Time(key.RevokedAt)).Append("</td><td>");
                if (key.RevokedAt is null)
                {
                    body.AppendPostForm(context, token, "/api-keys/revoke", "Revoke", [("id", id), ("tenant", tenant)]);
                }

                body.Append("</td></tr>");
            }

            body.Append("</tbody></table>");
            await InferenceJobsPages.WritePageAsync(context, "API keys", body.ToString()).ConfigureAwait(false);
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
