using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Async.Serving.Api.Webhooks;
using Async.Serving.Breakers;
using Hangfire;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The circuit breaker per webhook host, end to end: an API host with a Hangfire server delivers to a
/// local receiver that fails on purpose; the breaker's state is read from Redis as another API
/// replica would read it.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class WebhookBreakerTests(ServingFixture serving)
{
    private static readonly TimeSpan Wait = ServingFixture.JobWait;

    private static Dictionary<string, string?> Settings(int threshold, string coolDown) => new()
    {
        ["Serving:Auth:DevelopmentTenant"] = "breakers-" + Guid.NewGuid().ToString("N")[..8],
        ["Serving:Security:AllowPrivateNetworks"] = "true",
        ["Serving:Hangfire:RunServer"] = "true",
        ["Serving:Webhooks:RunRelay"] = "true",
        ["Serving:Webhooks:RetryDelays:0"] = "00:00:01",
        ["Serving:Webhooks:RetryDelays:1"] = "00:00:01",
        ["Serving:Webhooks:RetryDelays:2"] = "00:00:01",
        ["Serving:Webhooks:Timeout"] = "00:00:05",
        ["Serving:Webhooks:Breaker:FailureThreshold"] = threshold.ToString(CultureInfo.InvariantCulture),
        ["Serving:Webhooks:Breaker:CoolDown"] = coolDown,
    };

    private static async Task<string> SubmitAsync(HttpClient client, string url, int seed)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "image.embed",
            model = "resnet18",
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(seed, 160, 120)) },
            webhook = new { url },
        });
        Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    /// <summary>Polls until <paramref name="condition"/> gives a value, at most <see cref="Wait"/>.</summary>
    private static async Task<T> EventuallyAsync<T>(Func<Task<T?>> condition, string what)
        where T : class
    {
        var deadline = DateTime.UtcNow + Wait;
        while (true)
        {
            if (await condition() is { } value)
            {
                return value;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{what} within {Wait.TotalSeconds} s");
            await Task.Delay(50);
        }
    }

    private static async Task<IReadOnlyList<DeliveryAttempt>> AttemptsAsync(WebApplicationFactory<Program> api, string jobId) =>
        await api.Services.GetRequiredService<WebhookStore>().AttemptsAsync(jobId, CancellationToken.None);

    private static bool HasScheduledDelivery(WebApplicationFactory<Program> api, string jobId) =>
        api.Services.GetRequiredService<JobStorage>().GetMonitoringApi().ScheduledJobs(0, 500)
            .Any(j => j.Value?.Job?.Args is [WebhookMessage m, ..] && m.JobId == jobId);

    private static bool HasFailedDelivery(WebApplicationFactory<Program> api, string jobId) =>
        api.Services.GetRequiredService<JobStorage>().GetMonitoringApi().FailedJobs(0, 500)
            .Any(j => j.Value?.Job?.Args is [WebhookMessage m, ..] && m.JobId == jobId);

    /// <summary>The value of one series of the API's <c>/metrics</c>, or null when it is not there.</summary>
    private static async Task<double?> MetricAsync(WebApplicationFactory<Program> api, string series)
    {
        using var management = ServingFixture.ManagementClient(api);
        var text = await management.GetStringAsync("/metrics");
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        return line is null ? null : double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Failures_open_the_breaker_the_delivery_is_held_not_sent_then_one_probe_closes_it_and_it_arrives_once()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Answers.Enqueue(503);
        receiver.Answers.Enqueue(503);
        await using var api = serving.CreateApi(Settings(threshold: 2, coolDown: "00:00:10"));
        using var client = serving.Client(api);
        var breakers = api.Services.GetRequiredService<WebhookBreakers>();
        var url = receiver.NewUrl();
        var host = WebhookBreakers.HostOf(url);

        var id = await SubmitAsync(client, url, seed: 301);

        // Two 503s in a row open the breaker; the next attempt (a retry due 1 s later) is held, not sent.
        var open = await EventuallyAsync(async () => await breakers.GetAsync(host, CancellationToken.None) is { State: BreakerState.Open } b ? b : null,
            "the breaker open after two failures");
        Assert.Equal(2, receiver.Requests.Count);
        Assert.Contains("503", open.LastError, StringComparison.Ordinal);
        var held = await EventuallyAsync(async () => (await AttemptsAsync(api, id)).FirstOrDefault(a => a.Outcome == "held"), "a held attempt");
        Assert.Equal(3, held.Attempt); // held attempts are not spent: the held attempt is the third, and is the third again when it goes
        Assert.Contains(host, held.Detail, StringComparison.Ordinal);

        // The probe after the cool-down succeeds: the breaker closes and the held delivery arrives.
        var hooks = await receiver.WaitForAsync(url, 3, Wait);
        await EventuallyAsync(async () => (await AttemptsAsync(api, id)).Any(a => a.Outcome == "delivered") ? "delivered" : null, "the delivery recorded");
        Assert.Equal(BreakerState.Closed, (await breakers.GetAsync(host, CancellationToken.None)).State);
        await Task.Delay(TimeSpan.FromSeconds(2)); // any duplicate would arrive now

        Assert.Equal(3, receiver.Requests.Count);
        Assert.All(hooks, h => Assert.Equal($"msg_{id}_completed", h.Id));
        // Nothing reached the host while the breaker was open: the third request came after the cool-down.
        Assert.True(hooks[2].At >= open.OpenUntil!.Value.UtcDateTime, $"request at {hooks[2].At:O}, breaker open until {open.OpenUntil:O}");
        var attempts = await AttemptsAsync(api, id);
        Assert.Equal(["retrying", "retrying", "held", "delivered"], attempts.Select(a => a.Outcome));
        Assert.Equal([1, 2, 3, 3], attempts.Select(a => a.Attempt));
        Assert.False(HasFailedDelivery(api, id));
        Assert.False(HasScheduledDelivery(api, id));

        foreach (var to in new[] { "open", "half_open", "closed" })
        {
            Assert.Equal(1, await MetricAsync(api, $"serving_webhook_breaker_transitions_total{{host=\"{host}\",to=\"{to}\"}}"));
        }

        Assert.Equal(0, await MetricAsync(api, $"serving_webhook_breaker_state{{host=\"{host}\"}}"));
    }

    [Fact]
    public async Task Deliveries_to_an_open_host_are_held_pending_seen_by_every_replica_and_close_now_releases_them_once()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Answers.Enqueue(503);
        var settings = Settings(threshold: 1, coolDown: "00:10:00");
        await using var api = serving.CreateApi(settings);
        // A second replica: no Hangfire server, no relay; it reads the same breakers from Redis.
        await using var replica = serving.CreateApi(new Dictionary<string, string?>(settings)
        {
            ["Serving:Hangfire:RunServer"] = "false",
            ["Serving:Webhooks:RunRelay"] = "false",
        });
        using var client = serving.Client(api);
        var url = receiver.NewUrl();
        var other = receiver.NewUrl(); // another URL of the same host: one breaker
        var host = WebhookBreakers.HostOf(url);

        var first = await SubmitAsync(client, url, seed: 302);
        var heldFirst = await EventuallyAsync(async () => (await AttemptsAsync(api, first)).FirstOrDefault(a => a.Outcome == "held"), "the retry held");
        Assert.Equal(2, heldFirst.Attempt);
        var second = await SubmitAsync(client, other, seed: 303);
        var heldSecond = await EventuallyAsync(async () => (await AttemptsAsync(api, second)).FirstOrDefault(a => a.Outcome == "held"), "the first attempt held");
        Assert.Equal(1, heldSecond.Attempt);

        // Held: pending as scheduled Hangfire jobs, not failed, and nothing sent but the first failure.
        Assert.Single(receiver.Requests);
        Assert.True(HasScheduledDelivery(api, first));
        Assert.True(HasScheduledDelivery(api, second));
        Assert.False(HasFailedDelivery(api, first));
        Assert.False(HasFailedDelivery(api, second));
        var seen = await replica.Services.GetRequiredService<WebhookBreakers>().GetAsync(host, CancellationToken.None);
        Assert.Equal(BreakerState.Open, seen.State);
        Assert.Equal(2, seen.HeldCount);
        Assert.Equal(2, seen.Held.Count);
        Assert.Equal(BreakerDecision.Reject, (await replica.Services.GetRequiredService<WebhookBreakers>().AcquireAsync(host, CancellationToken.None)).Decision);
        Assert.Equal(2, await MetricAsync(replica, $"serving_webhook_breaker_state{{host=\"{host}\"}}"));
        Assert.Equal(2, await MetricAsync(replica, $"serving_webhook_breaker_held_deliveries{{host=\"{host}\"}}"));

        // The dashboard lists the host and its held deliveries; Close now releases them at once (the cool-down is 10 minutes).
        using var dashboard = await DashboardTests.SignInAsync(replica, serving.DashboardPassword);
        var page = await dashboard.GetStringAsync("/hangfire/webhooks");
        var table = page.Split("id=\"webhook-breakers\"")[1].Split("</table>")[0];
        Assert.Contains(System.Net.WebUtility.HtmlEncode(host), table, StringComparison.Ordinal);
        Assert.Contains("label-danger\">open", table, StringComparison.Ordinal);
        var closed = await DashboardManagementTests.SubmitAsync(dashboard, "/hangfire/webhooks", "/hangfire/webhooks/breakers/close", ("host", host));
        Assert.Contains("2 held deliveries were released", DashboardManagementTests.Outcome(closed), StringComparison.Ordinal);

        Assert.Single(await receiver.WaitForAsync(other, 1, Wait));
        Assert.Equal(2, (await receiver.WaitForAsync(url, 2, Wait)).Length);
        await EventuallyAsync(async () => (await AttemptsAsync(api, first)).Any(a => a.Outcome == "delivered")
            && (await AttemptsAsync(api, second)).Any(a => a.Outcome == "delivered") ? "both" : null, "both deliveries recorded");
        await Task.Delay(TimeSpan.FromSeconds(2)); // any duplicate would arrive now
        Assert.Equal(3, receiver.Requests.Count);
        Assert.Single(receiver.Requests, r => r.Id == $"msg_{second}_completed");
        Assert.Equal(BreakerState.Closed, (await api.Services.GetRequiredService<WebhookBreakers>().GetAsync(host, CancellationToken.None)).State);
        var after = (await dashboard.GetStringAsync("/hangfire/webhooks")).Split("<h2>Circuit breakers</h2>")[1].Split("<h2>")[0];
        Assert.DoesNotContain(System.Net.WebUtility.HtmlEncode(host), after, StringComparison.Ordinal);
    }
}
