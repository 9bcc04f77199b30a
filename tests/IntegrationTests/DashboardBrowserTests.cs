using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Async.Serving.Api.Ledger;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The operator pages of the dashboard in a real headless browser: Debian's <c>chromium</c>
/// (installed by scripts/test.sh), driven by Playwright's driver from its NuGet package, against an
/// API host on a loopback port. Nothing is downloaded: Playwright launches the system browser.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed partial class DashboardBrowserTests(ServingFixture serving)
{
    private static readonly TimeSpan Wait = ServingFixture.JobWait;

    /// <summary><c>SERVING_CHROMIUM</c> when set, else Debian's <c>/usr/bin/chromium</c>.</summary>
    private static string ChromiumPath =>
        Environment.GetEnvironmentVariable("SERVING_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    [Fact]
    public async Task An_operator_filters_the_jobs_cancels_a_queued_one_and_redelivers_its_webhook_in_a_browser()
    {
        Assert.True(File.Exists(ChromiumPath), $"no browser at {ChromiumPath}: scripts/test.sh installs Debian's chromium (or set SERVING_CHROMIUM)");
        await using var receiver = await WebhookReceiver.StartAsync();
        using var models = new PrivateModels(); // no worker serves it: its job stays queued until cancelled
        var tenant = "browser-" + Guid.NewGuid().ToString("N")[..8];
        var key = "sk_test_" + Guid.NewGuid().ToString("N");
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Models:Path"] = models.Path,
            ["Serving:Auth:DevelopmentKey"] = key,
            ["Serving:Auth:DevelopmentTenant"] = tenant,
            ["Serving:Security:AllowPrivateNetworks"] = "true",
            ["Serving:Hangfire:RunServer"] = "true",
            ["Serving:Webhooks:RunRelay"] = "true",
            ["Serving:Webhooks:RetryDelays:0"] = "00:00:01",
            ["Serving:Webhooks:Timeout"] = "00:00:05",
        });
        var baseUrl = ServingFixture.StartKestrel(api);
        using var client = serving.Client(api, key);

        var url = receiver.NewUrl();
        var submitted = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "image.embed",
            model = models.Name,
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(611, 64, 48)) },
            webhook = new { url },
        });
        await Problems.AssertStatusAsync(submitted, HttpStatusCode.Accepted);
        var id = (await submitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        await EventuallyAsync(async () => await api.Services.GetRequiredService<LedgerStore>().GetAsync(id, CancellationToken.None) is not null,
            "the job's ledger row");

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            // As root in a container Chromium's sandbox cannot start; /dev/shm may be small there too.
            Args = ["--no-sandbox", "--disable-dev-shm-usage"],
        });
        await using var context = await browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = baseUrl });
        context.SetDefaultTimeout((float)Wait.TotalMilliseconds);
        var page = await context.NewPageAsync();

        // Signed out, the page sends the browser to the sign-in form; signing in leads on to the dashboard.
        await page.GotoAsync("/hangfire/inference");
        Assert.EndsWith("/hangfire/login", page.Url, StringComparison.Ordinal);
        await page.FillAsync("input[name=username]", "admin");
        await page.FillAsync("input[name=password]", serving.DashboardPassword);
        await page.ClickAsync("button[type=submit]");
        await page.WaitForURLAsync(new Regex("/hangfire/?$"));

        // The inference jobs page sits inside Hangfire's layout: its navigation bar (with Hangfire's own
        // entries and ours, ours active), its stylesheet and its footer; the page's own tab is active.
        await page.GotoAsync("/hangfire/inference");
        Assert.Equal("Async.Serving operations", (await page.Locator(".navbar .navbar-brand").InnerTextAsync()).Trim());
        Assert.True(await page.Locator(".navbar a[href$='/hangfire/jobs/enqueued']").CountAsync() > 0, "Hangfire's Jobs entry is in the navigation bar");
        Assert.Equal("Serving", (await page.Locator(".navbar li.active a").InnerTextAsync()).Trim());
        Assert.Equal("Inference jobs", (await page.Locator("#operator-pages li.active a").InnerTextAsync()).Trim());
        Assert.Contains("Hangfire", await page.Locator("#footer").InnerTextAsync(), StringComparison.Ordinal);
        Assert.True(await page.Locator("head link[rel=stylesheet][href*='/hangfire/css']").CountAsync() > 0, "Hangfire's stylesheet is linked");
        Assert.Equal("Inference jobs", (await page.Locator("h1.page-header").InnerTextAsync()).Trim());

        // Filters: this tenant's queued jobs are exactly the one submitted.
        await page.FillAsync("#filter-tenant", tenant);
        await page.SelectOptionAsync("#filter-status", "queued");
        await page.ClickAsync("form.form-inline button[type=submit]");
        await page.WaitForURLAsync(new Regex("tenant=" + Regex.Escape(tenant)));
        var rows = page.Locator("#inference-jobs tbody tr");
        Assert.Equal(1, await rows.CountAsync());
        Assert.Contains(id, await rows.First.InnerTextAsync(), StringComparison.Ordinal);
        await page.SelectOptionAsync("#filter-status", "succeeded");
        await page.ClickAsync("form.form-inline button[type=submit]");
        await page.WaitForURLAsync(new Regex("status=succeeded"));
        Assert.Equal(0, await page.Locator("#inference-jobs tbody tr").CountAsync());
        await page.SelectOptionAsync("#filter-status", "queued");
        await page.ClickAsync("form.form-inline button[type=submit]");
        await page.WaitForURLAsync(new Regex("status=queued"));

        // The job's page, then Cancel: the job ends cancelled, on the page and for the public API.
        await page.ClickAsync($"#inference-jobs a:has-text('{id}')");
        await page.WaitForURLAsync(new Regex("/hangfire/inference/job\\?id="));
        Assert.Equal("queued", (await page.Locator("#job-status").InnerTextAsync()).Trim());
        Assert.Equal("Serving", (await page.Locator(".navbar li.active a").InnerTextAsync()).Trim());
        await page.ClickAsync("button:has-text('Cancel job')");
        await page.WaitForURLAsync(new Regex("outcome="));
        Assert.Contains("cancelled", await page.Locator("#outcome").InnerTextAsync(), StringComparison.Ordinal);
        Assert.Equal("cancelled", (await page.Locator("#job-status").InnerTextAsync()).Trim());
        Assert.Equal(0, await page.Locator("button:has-text('Cancel job')").CountAsync());
        var job = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
        Assert.Equal("cancelled", job.GetProperty("status").GetString());

        // The cancelled job's completion webhook arrives; then Redeliver on the webhooks page sends it again.
        var first = Assert.Single(await receiver.WaitForAsync(url, 1, Wait));
        Assert.Equal("job.completed", JsonDocument.Parse(first.Body).RootElement.GetProperty("type").GetString());
        await page.GotoAsync($"/hangfire/webhooks?job={Uri.EscapeDataString(id)}");
        var redeliver = page.Locator("#webhook-deliveries button:has-text('Redeliver')");
        var deadline = DateTime.UtcNow + Wait;
        while (await redeliver.CountAsync() == 0)
        {
            // The attempt is recorded just after the receiver answered.
            Assert.True(DateTime.UtcNow < deadline, "the delivery listed on the webhooks page");
            await Task.Delay(200);
            await page.ReloadAsync();
        }

        Assert.Equal("Serving", (await page.Locator(".navbar li.active a").InnerTextAsync()).Trim());
        Assert.Equal("Webhooks", (await page.Locator("#operator-pages li.active a").InnerTextAsync()).Trim());
        await redeliver.First.ClickAsync();
        await page.WaitForURLAsync(new Regex("outcome="));
        Assert.Contains("queued again", await page.Locator("#outcome").InnerTextAsync(), StringComparison.Ordinal);
        var again = (await receiver.WaitForAsync(url, 2, Wait))[1];
        Assert.Equal(first.Id, again.Id);
        Assert.Equal(first.Body, again.Body);
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what} within {Wait.TotalSeconds} s");
            await Task.Delay(100);
        }
    }
}
