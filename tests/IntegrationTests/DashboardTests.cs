using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;
using Hangfire;
using Hangfire.Storage;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

[Collection(ServingCollection.Name)]
public sealed class DashboardTests(ServingFixture serving)
{
    private const string RecurringJob = "maintenance-expire-queued";

    [Fact]
    public async Task The_dashboard_refuses_anonymous_and_wrong_credentials_and_admits_the_admin()
    {
        using var client = serving.Api.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        var anonymous = await client.GetAsync("/hangfire");
        await Problems.AssertAsync(anonymous, HttpStatusCode.Unauthorized, "unauthorized");
        // No Basic challenge: a browser never asks for, caches and resends a Basic credential here.
        Assert.DoesNotContain("Basic", anonymous.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);

        using var page = new HttpRequestMessage(HttpMethod.Get, "/hangfire");
        page.Headers.Accept.ParseAdd("text/html");
        var browser = await client.SendAsync(page);
        Assert.Equal(HttpStatusCode.Redirect, browser.StatusCode);
        Assert.Equal("/hangfire/login", browser.Headers.Location?.OriginalString);

        // An API key is not a dashboard credential (Hangfire answers an authenticated stranger 403).
        using var withKey = serving.Client();
        Assert.Equal(HttpStatusCode.Forbidden, (await withKey.GetAsync("/hangfire")).StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, (await Get(client, "admin", "wrong")).StatusCode);
        // Basic still works for tools that read (GET).
        var admitted = await Get(client, "admin", serving.DashboardPassword);
        Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
        Assert.Contains("Async.Serving operations", await admitted.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_cross_site_dashboard_post_is_refused_and_triggers_nothing()
    {
        // A host of its own: Hangfire's log provider is process-wide and follows the newest host.
        await using var api = serving.CreateApi();
        using var client = api.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        var before = LastJobId(api);

        using var evil = Trigger(basic: true);
        evil.Headers.Add("Origin", "http://evil.example");
        await Problems.AssertAsync(await client.SendAsync(evil), HttpStatusCode.Forbidden, "forbidden");

        using var fetchMetadata = Trigger(basic: true);
        fetchMetadata.Headers.Add("Sec-Fetch-Site", "cross-site");
        await Problems.AssertAsync(await client.SendAsync(fetchMetadata), HttpStatusCode.Forbidden, "forbidden");

        // A Basic credential (which a browser may hold from an earlier version) does not act, even same-origin.
        using var basicPost = Trigger(basic: true);
        basicPost.Headers.Add("Origin", "http://localhost");
        Assert.Equal(HttpStatusCode.Forbidden, (await client.SendAsync(basicPost)).StatusCode);

        // A cross-site login form is refused too.
        using var login = LoginRequest(serving.DashboardPassword);
        login.Headers.Add("Origin", "http://evil.example");
        await Problems.AssertAsync(await client.SendAsync(login), HttpStatusCode.Forbidden, "forbidden");

        Assert.Equal(before, LastJobId(api));
    }

    [Fact]
    public async Task The_login_sets_a_strict_cookie_and_same_origin_actions_with_the_token_work()
    {
        await using var api = serving.CreateApi();
        using var client = api.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        Assert.Contains("<form", await client.GetStringAsync("/hangfire/login"), StringComparison.Ordinal);

        using var wrong = LoginRequest("wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.SendAsync(wrong)).StatusCode);

        using var login = LoginRequest(serving.DashboardPassword);
        login.Headers.Add("Origin", "http://localhost");
        var signedIn = await client.SendAsync(login);
        Assert.Equal(HttpStatusCode.SeeOther, signedIn.StatusCode);
        var cookie = Assert.Single(signedIn.Headers.GetValues("Set-Cookie"), c => c.StartsWith("serving_dashboard=", StringComparison.Ordinal));
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);

        var html = await client.GetStringAsync("/hangfire/recurring");
        var header = Meta(html, "csrf-header");
        var token = Meta(html, "csrf-token");

        // The session alone, without the page's token, does not act.
        var before = LastJobId(api);
        using var noToken = Trigger(basic: false);
        noToken.Headers.Add("Origin", "http://localhost");
        Assert.Equal(HttpStatusCode.Forbidden, (await client.SendAsync(noToken)).StatusCode);
        Assert.Equal(before, LastJobId(api));

        using var trigger = Trigger(basic: false);
        trigger.Headers.Add("Origin", "http://localhost");
        trigger.Headers.Add("Sec-Fetch-Site", "same-origin");
        trigger.Headers.Add(header, token);
        var triggered = await client.SendAsync(trigger);
        Assert.True(triggered.IsSuccessStatusCode, $"trigger answered {(int)triggered.StatusCode}");
        Assert.NotEqual(before, LastJobId(api));
    }

    [Fact]
    public async Task Without_a_configured_password_nobody_gets_in()
    {
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Hangfire:DashboardPassword"] = "" });
        using var client = api.CreateClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await Get(client, "admin", "")).StatusCode);
    }

    private static AuthenticationHeaderValue Basic(string user, string password) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));

    private static async Task<HttpResponseMessage> Get(HttpClient client, string user, string password)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/hangfire");
        request.Headers.Authorization = Basic(user, password);
        return await client.SendAsync(request);
    }

    private HttpRequestMessage Trigger(bool basic)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/hangfire/recurring/trigger")
        {
            Content = new FormUrlEncodedContent([new KeyValuePair<string, string>("jobs[]", RecurringJob)]),
        };
        if (basic)
        {
            request.Headers.Authorization = Basic("admin", serving.DashboardPassword);
        }

        return request;
    }

    /// <summary>A client signed in to the dashboard as a browser on the same site would be.</summary>
    internal static async Task<HttpClient> SignInAsync(WebApplicationFactory<Program> api, string password)
    {
        var client = api.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        using var login = LoginRequest(password);
        login.Headers.Add("Origin", "http://localhost");
        Assert.Equal(HttpStatusCode.SeeOther, (await client.SendAsync(login)).StatusCode);
        return client;
    }

    private static HttpRequestMessage LoginRequest(string password) => new(HttpMethod.Post, "/hangfire/login")
    {
        Content = new FormUrlEncodedContent([new KeyValuePair<string, string>("username", "admin"), new KeyValuePair<string, string>("password", password)]),
    };

    private static string? LastJobId(WebApplicationFactory<Program> api)
    {
        using var connection = api.Services.GetRequiredService<JobStorage>().GetConnection();
        var job = Assert.Single(connection.GetRecurringJobs([RecurringJob]));
        return job.LastJobId;
    }

    private static string Meta(string html, string name)
    {
        var match = Regex.Match(html, $"<meta name=\"{name}\" content=\"([^\"]*)\"");
        Assert.True(match.Success, $"no {name} in the page");
        return System.Net.WebUtility.HtmlDecode(match.Groups[1].Value);
    }
}
