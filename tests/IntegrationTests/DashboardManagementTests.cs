using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Async.Serving.Api.Auth;
using Async.Serving.Api.Webhooks;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The operator's side of key and webhook management, in the dashboard, against the real stack:
/// the API keys page and its Revoke, the webhooks page with Redeliver, Enable and the test event,
/// and <c>last_used_at</c> of keys.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class DashboardManagementTests(ServingFixture serving)
{
    private static readonly TimeSpan Wait = ServingFixture.JobWait;

    private static string NewTenant(string prefix) => $"{prefix}-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>Posts <paramref name="fields"/> to a dashboard action with the antiforgery token of <paramref name="page"/>, as the page's form would.</summary>
    internal static async Task<HttpResponseMessage> SubmitAsync(HttpClient dashboard, string page, string action, params (string Name, string Value)[] fields)
    {
        var html = await dashboard.GetStringAsync(page);
        var token = Regex.Match(html, "name=\"__RequestVerificationToken\" value=\"([^\"]+)\"");
        Assert.True(token.Success, $"{page} has a form with an antiforgery token");
        using var request = new HttpRequestMessage(HttpMethod.Post, action)
        {
            Content = new FormUrlEncodedContent([
                .. fields.Select(f => new KeyValuePair<string, string>(f.Name, f.Value)),
                new("__RequestVerificationToken", WebUtility.HtmlDecode(token.Groups[1].Value))]),
        };
        request.Headers.Add("Origin", "http://localhost");
        request.Headers.Add("Sec-Fetch-Site", "same-origin");
        return await dashboard.SendAsync(request);
    }

    /// <summary>The outcome a 303 from an action carries to the page.</summary>
    internal static string Outcome(HttpResponseMessage answer)
    {
        Assert.Equal(HttpStatusCode.SeeOther, answer.StatusCode);
        var location = answer.Headers.Location!.OriginalString;
        var query = location[(location.IndexOf('?', StringComparison.Ordinal) + 1)..].Split('&');
        return WebUtility.UrlDecode(Assert.Single(query, p => p.StartsWith("outcome=", StringComparison.Ordinal))["outcome=".Length..]);
    }

    [Fact]
    public async Task The_keys_page_lists_every_tenants_keys_encoded_and_its_revoke_refuses_the_key_at_once_on_every_instance()
    {
        var tenant = NewTenant("dash-keys");
        var other = NewTenant("dash-keys-other");
        var store = serving.Api.Services.GetRequiredService<ApiKeyStore>();
        var admin = await store.CreateAsync(tenant, "<b>ops & co</b>", expiresAt: DateTimeOffset.UtcNow.AddDays(3), CancellationToken.None);
        var victim = await store.CreateAsync(tenant, "victim", expiresAt: null, admin: false, CancellationToken.None);
        var stranger = await store.CreateAsync(other, "stranger", expiresAt: null, CancellationToken.None);

        // Both instances cache keys for ten minutes: only the revocation message can stop the key in time.
        var cached = new Dictionary<string, string?> { ["Serving:Auth:KeyCacheDuration"] = "00:10:00" };
        await using var one = serving.CreateApi(cached);
        await using var two = serving.CreateApi(cached);
        using var victimOnOne = serving.Client(one, victim.Key);
        using var victimOnTwo = serving.Client(two, victim.Key);
        Assert.Equal(HttpStatusCode.OK, (await victimOnOne.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await victimOnTwo.GetAsync("/v1/models")).StatusCode);

        using var anonymous = one.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/hangfire/api-keys")).StatusCode);
        using var withKey = serving.Client(one);
        Assert.Equal(HttpStatusCode.Forbidden, (await withKey.GetAsync("/hangfire/api-keys")).StatusCode);

        using var dashboard = await DashboardTests.SignInAsync(one, serving.DashboardPassword);
        var page = await dashboard.GetStringAsync($"/hangfire/api-keys?tenant={tenant}");
        Assert.Contains(admin.Record.Id.ToString("N"), page, StringComparison.Ordinal);
        Assert.Contains(victim.Record.Id.ToString("N"), page, StringComparison.Ordinal);
        Assert.Contains(WebUtility.HtmlEncode(victim.Record.KeyPrefix), page, StringComparison.Ordinal);
        Assert.Contains("&lt;b&gt;ops &amp; co&lt;/b&gt;", page, StringComparison.Ordinal);
        Assert.DoesNotContain("<b>ops", page, StringComparison.Ordinal);
        Assert.Contains(admin.Record.ExpiresAt!.Value.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture), page, StringComparison.Ordinal);
        Assert.DoesNotContain(stranger.Record.Id.ToString("N"), page, StringComparison.Ordinal);
        Assert.DoesNotContain(victim.Key, page, StringComparison.Ordinal);
        Assert.DoesNotContain(admin.Key, page, StringComparison.Ordinal);
        var all = await dashboard.GetStringAsync("/hangfire/api-keys");
        Assert.Contains(stranger.Record.Id.ToString("N"), all, StringComparison.Ordinal);
        Assert.Contains(victim.Record.Id.ToString("N"), all, StringComparison.Ordinal);
        var hostile = await dashboard.GetStringAsync("/hangfire/api-keys?tenant=" + Uri.EscapeDataString("<script>alert(1)</script>"));
        Assert.DoesNotContain("<script>alert", hostile, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;", hostile, StringComparison.Ordinal);

        // Without the page's token nothing is revoked.
        using var noToken = new HttpRequestMessage(HttpMethod.Post, "/hangfire/api-keys/revoke")
        {
            Content = new FormUrlEncodedContent([new("id", victim.Record.Id.ToString("N"))]),
        };
        noToken.Headers.Add("Origin", "http://localhost");
        Assert.NotEqual(HttpStatusCode.SeeOther, (await dashboard.SendAsync(noToken)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await victimOnOne.GetAsync("/v1/models")).StatusCode);

        var revoked = await SubmitAsync(dashboard, $"/hangfire/api-keys?tenant={tenant}", "/hangfire/api-keys/revoke",
            ("id", victim.Record.Id.ToString("N")), ("tenant", tenant));
        Assert.Contains("revoked", Outcome(revoked), StringComparison.Ordinal);
        Assert.Contains($"tenant={tenant}", revoked.Headers.Location!.OriginalString, StringComparison.Ordinal);

        // At once on the instance that revoked it; on the other as soon as the Redis message lands (bounded wait).
        await Problems.AssertAsync(await victimOnOne.GetAsync("/v1/models"), HttpStatusCode.Unauthorized, "unauthorized");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        HttpStatusCode status;
        while ((status = (await victimOnTwo.GetAsync("/v1/models")).StatusCode) == HttpStatusCode.OK && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.NotNull((await store.FindAsync(ApiKeyStore.Hash(victim.Key), CancellationToken.None))!.RevokedAt);
        var after = await dashboard.GetStringAsync($"/hangfire/api-keys?tenant={tenant}");
        Assert.Single(Regex.Matches(after, "value=\"Revoke\"|>Revoke<")); // only the admin key still has the button

        var again = await SubmitAsync(dashboard, "/hangfire/api-keys", "/hangfire/api-keys/revoke", ("id", victim.Record.Id.ToString("N")));
        Assert.Contains("No API key", Outcome(again), StringComparison.Ordinal);
        using var strangerClient = serving.Client(one, stranger.Key);
        Assert.Equal(HttpStatusCode.OK, (await strangerClient.GetAsync("/v1/models")).StatusCode);
    }

    [Fact]
    public async Task Last_used_at_appears_after_use_and_is_not_written_on_every_request()
    {
        var tenant = NewTenant("dash-last-used");
        var store = serving.Api.Services.GetRequiredService<ApiKeyStore>();
        var admin = await store.CreateAsync(tenant, "admin", expiresAt: null, CancellationToken.None);
        var plain = await store.CreateAsync(tenant, "plain", expiresAt: null, admin: false, CancellationToken.None);
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Auth:LastUsedPrecision"] = "01:00:00",
            ["Serving:Auth:LastUsedFlushInterval"] = "00:00:00.100",
        });
        using var adminClient = serving.Client(api, admin.Key);
        using var plainClient = serving.Client(api, plain.Key);

        async Task<JsonElement> PlainAsync()
        {
            var keys = await adminClient.GetFromJsonAsync<JsonElement>("/v1/keys");
            return keys.GetProperty("data").EnumerateArray().Single(k => k.GetProperty("id").GetString() == plain.Record.Id.ToString("N"));
        }

        Assert.Equal(JsonValueKind.Null, (await PlainAsync()).GetProperty("last_used_at").ValueKind);

        Assert.Equal(HttpStatusCode.OK, (await plainClient.GetAsync("/v1/models")).StatusCode);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        JsonElement lastUsed;
        while ((lastUsed = (await PlainAsync()).GetProperty("last_used_at")).ValueKind == JsonValueKind.Null)
        {
            Assert.True(DateTime.UtcNow < deadline, "last_used_at not written within 20 s of the key's use");
            await Task.Delay(100);
        }

        var first = lastUsed.GetDateTime();
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await plainClient.GetAsync("/v1/models")).StatusCode);
        }

        // Within the precision no use is noted for writing, and the row keeps its first value.
        var usage = api.Services.GetRequiredService<ApiKeyUsage>();
        Assert.Equal(0, usage.PendingCount);
        await usage.FlushAsync(CancellationToken.None);
        var stored = (await store.ListAsync(tenant, CancellationToken.None)).Single(k => k.Id == plain.Record.Id);
        Assert.Equal(first, stored.LastUsedAt!.Value.UtcDateTime);
        Assert.Equal(first, (await PlainAsync()).GetProperty("last_used_at").GetDateTime());

        // The dashboard shows it too.
        using var dashboard = await DashboardTests.SignInAsync(api, serving.DashboardPassword);
        var page = await dashboard.GetStringAsync($"/hangfire/api-keys?tenant={tenant}");
        Assert.Contains(first.ToString("yyyy-MM-dd HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture), page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancel_on_the_job_page_needs_the_pages_token_and_ends_a_queued_job_as_the_api_does()
    {
        using var models = new PrivateModels(); // no worker serves it: the job stays queued
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path });
        using var client = serving.Client(api);
        var submitted = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "image.embed",
            model = models.Name,
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(612, 64, 48)) },
        });
        await Problems.AssertStatusAsync(submitted, HttpStatusCode.Accepted);
        var id = (await submitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var ledger = api.Services.GetRequiredService<Async.Serving.Api.Ledger.LedgerStore>();
        await EventuallyAsync(async () => await ledger.GetAsync(id, CancellationToken.None) is not null, "the job's ledger row");

        using var dashboard = await DashboardTests.SignInAsync(api, serving.DashboardPassword);
        var page = await dashboard.GetStringAsync($"/hangfire/inference/job?id={id}");
        Assert.Contains(">Cancel job<", page, StringComparison.Ordinal);

        // From another site, or without the page's token: refused, the job stays queued.
        using var crossSite = new HttpRequestMessage(HttpMethod.Post, "/hangfire/inference/job/cancel") { Content = new FormUrlEncodedContent([new("id", id)]) };
        crossSite.Headers.Add("Origin", "http://evil.example");
        Assert.Equal(HttpStatusCode.Forbidden, (await dashboard.SendAsync(crossSite)).StatusCode);
        using var noToken = new HttpRequestMessage(HttpMethod.Post, "/hangfire/inference/job/cancel") { Content = new FormUrlEncodedContent([new("id", id)]) };
        noToken.Headers.Add("Origin", "http://localhost");
        Assert.NotEqual(HttpStatusCode.SeeOther, (await dashboard.SendAsync(noToken)).StatusCode);
        Assert.Equal("queued", (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}")).GetProperty("status").GetString());

        var cancelled = await SubmitAsync(dashboard, $"/hangfire/inference/job?id={id}", "/hangfire/inference/job/cancel", ("id", id));
        Assert.Contains("cancelled", Outcome(cancelled), StringComparison.Ordinal);
        Assert.Contains($"id={id}", cancelled.Headers.Location!.OriginalString, StringComparison.Ordinal);
        Assert.Equal("cancelled", (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}")).GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.Conflict, (await client.PostAsync($"/v1/jobs/{id}/cancel", null)).StatusCode);
        var after = await dashboard.GetStringAsync(cancelled.Headers.Location!.OriginalString);
        Assert.DoesNotContain(">Cancel job<", after, StringComparison.Ordinal);
        Assert.Contains(">cancelled<", after, StringComparison.Ordinal);

        var again = await SubmitAsync(dashboard, "/hangfire/webhooks", "/hangfire/inference/job/cancel", ("id", id));
        Assert.Contains("already finished", Outcome(again), StringComparison.Ordinal);
        var missing = await SubmitAsync(dashboard, "/hangfire/webhooks", "/hangfire/inference/job/cancel", ("id", "no-such-job"));
        Assert.Contains("no job", Outcome(missing), StringComparison.Ordinal);
    }

    private static Dictionary<string, string?> WebhookSettings(bool allowPrivate = true) => new()
    {
        ["Serving:Security:AllowPrivateNetworks"] = allowPrivate ? "true" : "false",
        ["Serving:Hangfire:RunServer"] = "true",
        ["Serving:Webhooks:RetryDelays:0"] = "00:00:01",
        ["Serving:Webhooks:Timeout"] = "00:00:05",
    };

    private static bool Verifies(string secret, ReceivedWebhook hook)
    {
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        var expected = "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{hook.Id}.{hook.Timestamp}.{hook.Body}")));
        return hook.Signature.Split(' ').Contains(expected);
    }

    /// <summary>Polls until <paramref name="condition"/> holds, at most <see cref="Wait"/>.</summary>
    private static async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what} within {Wait.TotalSeconds} s");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task The_webhooks_page_lists_deliveries_across_tenants_and_redelivers_enables_and_sends_test_events()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(WebhookSettings());
        var store = api.Services.GetRequiredService<WebhookStore>();
        var tenant = NewTenant("dash-hooks");
        var other = NewTenant("dash-hooks-other");
        var url = receiver.NewUrl();
        var jobId = "job-" + Guid.NewGuid().ToString("N");
        var otherJob = "job-" + Guid.NewGuid().ToString("N");
        var message = new WebhookMessage(tenant, jobId, url, "job.completed", "msg_" + Guid.NewGuid().ToString("N"), "{\"type\":\"job.completed\",\"data\":{}}");
        await store.RecordAttemptAsync(message, 1, "failed", "Receiver answered 500: <html>oops</html>");
        await store.RecordAttemptAsync(message with { TenantId = other, JobId = otherJob, MessageId = "msg_" + Guid.NewGuid().ToString("N") }, 1, "delivered", "200");

        using var dashboard = await DashboardTests.SignInAsync(api, serving.DashboardPassword);
        var page = await dashboard.GetStringAsync($"/hangfire/webhooks?tenant={tenant}");
        Assert.Contains(jobId, page, StringComparison.Ordinal);
        Assert.Contains(message.MessageId, page, StringComparison.Ordinal);
        Assert.Contains(WebUtility.HtmlEncode(url), page, StringComparison.Ordinal);
        Assert.Contains("Receiver answered 500: &lt;html&gt;oops&lt;/html&gt;", page, StringComparison.Ordinal);
        Assert.DoesNotContain("<html>oops", page, StringComparison.Ordinal);
        Assert.DoesNotContain(otherJob, page, StringComparison.Ordinal);
        Assert.Contains(otherJob, await dashboard.GetStringAsync($"/hangfire/webhooks?job={otherJob}"), StringComparison.Ordinal);
        Assert.DoesNotContain(jobId, await dashboard.GetStringAsync($"/hangfire/webhooks?tenant={tenant}&status=delivered"), StringComparison.Ordinal);
        Assert.Contains(jobId, await dashboard.GetStringAsync($"/hangfire/webhooks?tenant={tenant}&job={jobId}&status=failed"), StringComparison.Ordinal);
        var everyone = await dashboard.GetStringAsync("/hangfire/webhooks");
        Assert.Contains(jobId, everyone, StringComparison.Ordinal);
        Assert.Contains(otherJob, everyone, StringComparison.Ordinal);
        var hostile = await dashboard.GetStringAsync("/hangfire/webhooks?job=" + Uri.EscapeDataString("\"><script>alert(1)</script>"));
        Assert.DoesNotContain("<script>alert", hostile, StringComparison.Ordinal);

        // Redeliver: the same message (webhook id, body) goes out again, signed with the tenant's secret.
        var secret = await store.CurrentSecretAsync(tenant, CancellationToken.None);
        var delivery = Assert.Single(await store.DeliveriesAsync(tenant, jobId, null, null, 10, CancellationToken.None));
        var redelivered = await SubmitAsync(dashboard, $"/hangfire/webhooks?tenant={tenant}", "/hangfire/webhooks/redeliver",
            ("id", delivery.Id.ToString(CultureInfo.InvariantCulture)));
        Assert.Contains("queued again", Outcome(redelivered), StringComparison.Ordinal);
        var hook = Assert.Single(await receiver.WaitForAsync(url, 1, Wait));
        Assert.Equal(message.MessageId, hook.Id);
        Assert.Equal(message.Body, hook.Body);
        Assert.True(Verifies(secret, hook));
        await EventuallyAsync(async () => (await store.DeliveriesAsync(tenant, jobId, "delivered", null, 10, CancellationToken.None)).Count == 1,
            "the redelivery recorded as delivered");
        var missing = await SubmitAsync(dashboard, "/hangfire/webhooks", "/hangfire/webhooks/redeliver", ("id", "999999999999"));
        Assert.Contains("no webhook delivery", Outcome(missing), StringComparison.Ordinal);

        // A test event that the receiver answers 410 disables the URL; the page lists it; Enable turns it back on.
        receiver.Answers.Enqueue(410);
        var tested = await SubmitAsync(dashboard, "/hangfire/webhooks", "/hangfire/webhooks/test", ("tenant", tenant), ("url", url));
        Assert.Contains("queued", Outcome(tested), StringComparison.Ordinal);
        var test = (await receiver.WaitForAsync(url, 2, Wait))[1];
        Assert.Equal("webhook.test", JsonDocument.Parse(test.Body).RootElement.GetProperty("type").GetString());
        Assert.True(Verifies(secret, test));
        await EventuallyAsync(() => store.IsDisabledAsync(tenant, url, CancellationToken.None), "the URL disabled after 410");
        var disabledPage = await dashboard.GetStringAsync($"/hangfire/webhooks?tenant={tenant}");
        Assert.Matches(new Regex($"<h2>Disabled endpoints</h2>.*<td>{Regex.Escape(tenant)}</td><td>{Regex.Escape(WebUtility.HtmlEncode(url))}</td>", RegexOptions.Singleline), disabledPage);
        Assert.DoesNotContain(WebUtility.HtmlEncode(url), (await dashboard.GetStringAsync($"/hangfire/webhooks?tenant={other}")).Split("Disabled endpoints")[1], StringComparison.Ordinal);

        var enabled = await SubmitAsync(dashboard, $"/hangfire/webhooks?tenant={tenant}", "/hangfire/webhooks/enable", ("tenant", tenant), ("url", url));
        Assert.Contains("is enabled", Outcome(enabled), StringComparison.Ordinal);
        Assert.False(await store.IsDisabledAsync(tenant, url, CancellationToken.None));
        var tenantHooks = await dashboard.GetStringAsync($"/hangfire/webhooks?tenant={tenant}");
        Assert.Contains("<p>None.</p>", tenantHooks.Split("Disabled endpoints")[1], StringComparison.Ordinal);

        Assert.Contains("queued", Outcome(await SubmitAsync(dashboard, "/hangfire/webhooks", "/hangfire/webhooks/test", ("tenant", tenant), ("url", url))), StringComparison.Ordinal);
        var delivered = (await receiver.WaitForAsync(url, 3, Wait))[2];
        Assert.True(Verifies(secret, delivered));

        // Bad input is answered on the page, encoded, and sends nothing.
        var badTenant = await SubmitAsync(dashboard, "/hangfire/webhooks", "/hangfire/webhooks/test", ("tenant", "<b>x</b>"), ("url", url));
        Assert.Contains("tenant id is required", Outcome(badTenant), StringComparison.Ordinal);
        var badUrl = await SubmitAsync(dashboard, "/hangfire/webhooks", "/hangfire/webhooks/test", ("tenant", tenant), ("url", "ftp://example.com/<x>"));
        Assert.Contains("absolute http or https URL", Outcome(badUrl), StringComparison.Ordinal);
        var shown = await dashboard.GetStringAsync(badUrl.Headers.Location!.OriginalString);
        Assert.Contains("absolute http or https URL", shown, StringComparison.Ordinal);
        Assert.Equal(3, receiver.Requests.Count);
    }

    [Fact]
    public async Task A_test_event_from_the_dashboard_goes_through_the_ssrf_guard()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(WebhookSettings(allowPrivate: false));
        using var dashboard = await DashboardTests.SignInAsync(api, serving.DashboardPassword);
        var tenant = NewTenant("dash-ssrf");

        var refused = await SubmitAsync(dashboard, "/hangfire/webhooks", "/hangfire/webhooks/test", ("tenant", tenant), ("url", receiver.NewUrl()));
        Assert.StartsWith("Not sent:", Outcome(refused), StringComparison.Ordinal);
        Assert.Contains("loopback", Outcome(refused), StringComparison.OrdinalIgnoreCase);
        Assert.Empty(await api.Services.GetRequiredService<WebhookStore>().DeliveriesAsync(tenant, null, null, null, 10, CancellationToken.None));
        Assert.Empty(receiver.Requests);
    }
}
