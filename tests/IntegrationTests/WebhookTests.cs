using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Async.Serving.Api.Webhooks;
using Hangfire;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// Signed webhooks end to end: the fixture's worker runs the jobs, an API host with a Hangfire server
/// delivers to a local receiver, and the signatures are checked here with HMAC-SHA256 directly,
/// independently of the signing code.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class WebhookTests(ServingFixture serving)
{
    private static readonly TimeSpan DeliveryWait = ServingFixture.JobWait;

    /// <summary>Deliveries to loopback allowed, quick retries, and a tenant of the test's own (secrets and disabled URLs are per tenant).</summary>
    private static Dictionary<string, string?> Settings() => new()
    {
        ["Serving:Auth:DevelopmentTenant"] = "webhooks-" + Guid.NewGuid().ToString("N")[..8],
        ["Serving:Security:AllowPrivateNetworks"] = "true",
        ["Serving:Hangfire:RunServer"] = "true",
        ["Serving:Webhooks:RunRelay"] = "true",
        ["Serving:Webhooks:RetryDelays:0"] = "00:00:01",
        ["Serving:Webhooks:RetryDelays:1"] = "00:00:01",
        ["Serving:Webhooks:RetryDelays:2"] = "00:00:01",
        ["Serving:Webhooks:Timeout"] = "00:00:05",
    };

    private static object Body(string url, string[]? events = null, int seed = 70) => new
    {
        pipeline = "image.embed",
        model = "resnet18",
        input = new { base64 = Convert.ToBase64String(TestImages.Scene(seed, 320, 240)) },
        webhook = new { url, events },
    };

    private static async Task<string> SubmitAsync(HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs", body);
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    private static async Task<string> SecretAsync(HttpClient client) =>
        (await client.GetFromJsonAsync<JsonElement>("/v1/webhooks/secret")).GetProperty("secret").GetString()!;

    /// <summary>The Standard Webhooks signature, computed from the spec: HMAC-SHA256 over "id.timestamp.body" with the secret's bytes.</summary>
    private static string Expected(string secret, ReceivedWebhook hook)
    {
        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        return "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{hook.Id}.{hook.Timestamp}.{hook.Body}")));
    }

    private static bool Verifies(string secret, ReceivedWebhook hook) => hook.Signature.Split(' ').Contains(Expected(secret, hook));

    private static JsonElement Json(ReceivedWebhook hook) => JsonDocument.Parse(hook.Body).RootElement;

    [Fact]
    public async Task A_finished_job_is_delivered_signed_with_the_tenants_secret()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(Settings());
        using var client = serving.Client(api);
        var secret = await SecretAsync(client);
        Assert.True(Convert.FromBase64String(secret["whsec_".Length..]).Length >= 24);
        Assert.Equal(secret, await SecretAsync(client)); // created once, then kept

        var url = receiver.NewUrl();
        var id = await SubmitAsync(client, Body(url));
        var hook = Assert.Single(await receiver.WaitForAsync(url, 1, DeliveryWait));

        Assert.Equal($"msg_{id}_completed", hook.Id);
        Assert.InRange(long.Parse(hook.Timestamp, System.Globalization.CultureInfo.InvariantCulture),
            DateTimeOffset.UtcNow.AddMinutes(-2).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeSeconds());
        Assert.Equal(Expected(secret, hook), hook.Signature);
        var body = Json(hook);
        Assert.Equal("job.completed", body.GetProperty("type").GetString());
        Assert.EndsWith("Z", body.GetProperty("timestamp").GetString(), StringComparison.Ordinal);
        var data = body.GetProperty("data");
        Assert.Equal(id, data.GetProperty("id").GetString());
        Assert.Equal("succeeded", data.GetProperty("status").GetString());
        Assert.Equal(512, data.GetProperty("output").GetProperty("dims").GetInt32());
        Assert.Equal($"/v1/jobs/{id}", data.GetProperty("links").GetProperty("self").GetString());
        Assert.Equal(url, data.GetProperty("webhook").GetProperty("url").GetString());
        Assert.Equal("completed", Assert.Single(data.GetProperty("webhook").GetProperty("events").EnumerateArray()).GetString());
    }

    [Fact]
    public async Task A_500_is_retried_with_the_same_webhook_id_and_a_fresh_valid_signature()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(Settings());
        using var client = serving.Client(api);
        var secret = await SecretAsync(client);
        receiver.Answers.Enqueue(500);

        var url = receiver.NewUrl();
        var id = await SubmitAsync(client, Body(url, seed: 71));
        var hooks = await receiver.WaitForAsync(url, 2, DeliveryWait);

        Assert.Equal(2, hooks.Length);
        Assert.All(hooks, h => Assert.Equal($"msg_{id}_completed", h.Id));
        Assert.All(hooks, h => Assert.True(Verifies(secret, h), "signature verifies"));
        Assert.Equal(hooks[0].Body, hooks[1].Body);
        // Not timed: Hangfire keeps the due time of a scheduled job in whole seconds, so a 1 s retry may come sooner.
        Assert.True(hooks[1].At >= hooks[0].At);

        // Both attempts are on record for the job's dashboard page (written right after each answer).
        var store = api.Services.GetRequiredService<WebhookStore>();
        var deadline = DateTime.UtcNow + DeliveryWait;
        IReadOnlyList<DeliveryAttempt> attempts;
        while ((attempts = await store.AttemptsAsync(id, CancellationToken.None)).Count < 2 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Equal(["retrying", "delivered"], attempts.Select(a => a.Outcome));
        Assert.Equal([1, 2], attempts.Select(a => a.Attempt));
    }

    /// <summary>The failed Hangfire delivery job of <paramref name="messageId"/>, waited for at most <see cref="DeliveryWait"/>.</summary>
    private static async Task<string> FailedDeliveryAsync(WebApplicationFactory<Program> api, string messageId)
    {
        var monitoring = api.Services.GetRequiredService<JobStorage>().GetMonitoringApi();
        var deadline = DateTime.UtcNow + DeliveryWait;
        while (true)
        {
            var failed = monitoring.FailedJobs(0, 200).Select(j => j.Value)
                .FirstOrDefault(j => j?.Job?.Args is [WebhookMessage m, ..] && m.MessageId == messageId);
            if (failed is not null)
            {
                return failed.ExceptionMessage;
            }

            Assert.True(DateTime.UtcNow < deadline, $"no failed delivery of {messageId} within {DeliveryWait.TotalSeconds} s");
            await Task.Delay(200);
        }
    }

    [Fact]
    public async Task After_the_last_retry_the_delivery_stays_failed_and_a_redirect_is_not_retried()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(Settings());
        using var client = serving.Client(api);
        foreach (var _ in Enumerable.Range(0, 4))
        {
            receiver.Answers.Enqueue(503);
        }

        var url = receiver.NewUrl();
        var id = await SubmitAsync(client, Body(url, seed: 78));
        Assert.Equal(4, (await receiver.WaitForAsync(url, 4, DeliveryWait)).Length); // the first attempt and 3 retries
        Assert.Contains("last of 4 attempts", await FailedDeliveryAsync(api, $"msg_{id}_completed"), StringComparison.Ordinal);

        receiver.Answers.Enqueue(302);
        var redirecting = receiver.NewUrl();
        var second = await SubmitAsync(client, Body(redirecting, seed: 79));
        Assert.Contains("not retried", await FailedDeliveryAsync(api, $"msg_{second}_completed"), StringComparison.Ordinal);
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Single(receiver.Requests, r => r.Path == new Uri(redirecting).AbsolutePath);
    }

    [Fact]
    public async Task A_410_disables_the_url_for_the_tenant()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(Settings());
        using var client = serving.Client(api);
        receiver.Answers.Enqueue(410);

        var gone = receiver.NewUrl();
        await SubmitAsync(client, Body(gone, seed: 72));
        Assert.Single(await receiver.WaitForAsync(gone, 1, DeliveryWait));
        await Task.Delay(TimeSpan.FromSeconds(1)); // the delivery records the 410 just after the receiver answered

        // A second job to the disabled URL and a canary to another one: once the canary arrived, the
        // second job's delivery has had its turn (and a retry's delay on top).
        var second = await SubmitAsync(client, Body(gone, seed: 73));
        var other = receiver.NewUrl();
        var canary = await SubmitAsync(client, Body(other, seed: 74));
        Assert.Equal("succeeded", (await ServingFixture.WaitForTerminalAsync(client, second)).GetProperty("status").GetString());
        Assert.Single(await receiver.WaitForAsync(other, 1, DeliveryWait));
        Assert.Contains(receiver.Requests, r => r.Id == $"msg_{canary}_completed");
        await Task.Delay(TimeSpan.FromSeconds(2));

        Assert.Single(receiver.Requests, r => r.Path == new Uri(gone).AbsolutePath);
    }

    [Fact]
    public async Task A_webhook_to_a_private_address_is_refused_at_submit_by_default()
    {
        using var client = serving.Client(); // the fixture's API: private networks not allowed
        var before = await client.GetFromJsonAsync<JsonElement>("/v1/jobs?limit=1");

        var response = await client.PostAsJsonAsync("/v1/jobs", Body("http://127.0.0.1:9/hooks/x"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("input_invalid", problem.GetProperty("code").GetString());
        Assert.Contains("loopback", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.True(problem.GetProperty("errors").TryGetProperty("webhook.url", out _));

        var metadata = await client.PostAsJsonAsync("/v1/jobs", Body("http://169.254.169.254/latest"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, metadata.StatusCode);

        var after = await client.GetFromJsonAsync<JsonElement>("/v1/jobs?limit=1");
        Assert.Equal(before.GetProperty("data").GetRawText(), after.GetProperty("data").GetRawText()); // no job was created
    }

    [Fact]
    public async Task Malformed_webhooks_are_400_naming_the_field()
    {
        using var client = serving.Client();
        var unknownEvent = await client.PostAsJsonAsync("/v1/jobs", Body("https://example.com/hook", ["finished"]));
        Assert.Equal(HttpStatusCode.BadRequest, unknownEvent.StatusCode);
        Assert.True((await unknownEvent.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors").TryGetProperty("webhook.events", out _));

        var ftp = await client.PostAsJsonAsync("/v1/jobs", Body("ftp://example.com/hook"));
        Assert.Equal(HttpStatusCode.BadRequest, ftp.StatusCode);
        Assert.True((await ftp.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors").TryGetProperty("webhook.url", out _));
    }

    [Fact]
    public async Task Started_events_are_delivered_when_asked_for()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(Settings());
        using var client = serving.Client(api);

        var url = receiver.NewUrl();
        var id = await SubmitAsync(client, Body(url, ["started", "completed"], seed: 75));
        var hooks = await receiver.WaitForAsync(url, 2, DeliveryWait);

        Assert.Equal(["job.completed", "job.started"], hooks.Select(h => Json(h).GetProperty("type").GetString()).Order(StringComparer.Ordinal));
        Assert.Contains(hooks, h => h.Id == $"msg_{id}_started");
        Assert.Contains(hooks, h => h.Id == $"msg_{id}_completed");

        // Only completed by default: no started event for a job that did not ask.
        var plain = receiver.NewUrl();
        var second = await SubmitAsync(client, Body(plain, seed: 76));
        Assert.Single(await receiver.WaitForAsync(plain, 1, DeliveryWait));
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal($"msg_{second}_completed", Assert.Single(receiver.Requests, r => r.Path == new Uri(plain).AbsolutePath).Id);
    }

    [Fact]
    public async Task After_a_rotation_deliveries_carry_the_new_and_the_old_signature()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(Settings());
        using var client = serving.Client(api);
        var old = await SecretAsync(client);

        var rotate = await client.PostAsync("/v1/webhooks/secret/rotate", null);
        Assert.Equal(HttpStatusCode.OK, rotate.StatusCode);
        var rotated = await rotate.Content.ReadFromJsonAsync<JsonElement>();
        var current = rotated.GetProperty("secret").GetString()!;
        Assert.NotEqual(old, current);
        Assert.Equal(current, await SecretAsync(client));
        Assert.InRange(rotated.GetProperty("previous_secret_expires_at").GetDateTime(), DateTime.UtcNow.AddHours(23), DateTime.UtcNow.AddHours(25));

        var url = receiver.NewUrl();
        await SubmitAsync(client, Body(url, seed: 77));
        var hook = Assert.Single(await receiver.WaitForAsync(url, 1, DeliveryWait));

        var signatures = hook.Signature.Split(' ');
        Assert.Equal(2, signatures.Length);
        Assert.Equal(Expected(current, hook), signatures[0]);
        Assert.Equal(Expected(old, hook), signatures[1]);
    }

    [Fact]
    public async Task A_video_sends_coalesced_signed_progress_events_and_then_its_completion()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(Settings());
        using var client = serving.Client(api);
        var secret = await SecretAsync(client);
        var url = receiver.NewUrl();
        var video = await TestVideos.ShotsAsync([(51, 6.0), (52, 6.0)], width: 320, height: 240);
        var id = await SubmitAsync(client, new
        {
            pipeline = "video.analyze",
            input = new { base64 = Convert.ToBase64String(video) },
            @params = new { sample_fps = 10 },
            webhook = new { url, events = new[] { "progress", "completed" } },
        });

        var job = await ServingFixture.WaitForTerminalAsync(client, id);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        var deadline = DateTime.UtcNow + DeliveryWait;
        while (!receiver.Requests.Any(r => r.Id == $"msg_{id}_completed"))
        {
            Assert.True(DateTime.UtcNow < deadline, "no job.completed delivery");
            await Task.Delay(100);
        }

        await Task.Delay(TimeSpan.FromSeconds(1)); // any progress delivery still in flight
        var hooks = await receiver.WaitForAsync(url, 2, DeliveryWait);
        Assert.All(hooks, h => Assert.True(Verifies(secret, h)));
        var progress = hooks.Where(h => Json(h).GetProperty("type").GetString() == "job.progress").ToArray();
        Assert.NotEmpty(progress);
        Assert.Equal(progress.Length, progress.Select(h => h.Id).Distinct().Count());
        Assert.All(progress, h =>
        {
            Assert.StartsWith($"msg_{id}_progress_", h.Id, StringComparison.Ordinal);
            // The job as it stood when the progress was sent: running, never a finished job.
            Assert.Equal("running", Json(h).GetProperty("data").GetProperty("status").GetString());
            Assert.InRange(Json(h).GetProperty("data").GetProperty("progress").GetDouble(), 0.0, 0.99);
        });

        // Coalesced: no more than one per 500 ms of execution (plus the first).
        var executionMs = job.GetProperty("execution_ms").GetInt64();
        Assert.InRange(progress.Length, 1, (executionMs / 500) + 1);
        Assert.Equal("succeeded", Json(Assert.Single(hooks, h => h.Id == $"msg_{id}_completed")).GetProperty("data").GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_progress_event_still_queued_when_its_job_ends_is_not_sent()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var settings = Settings();
        await using var api = serving.CreateApi(settings);
        using var client = serving.Client(api);
        var url = receiver.NewUrl();
        var id = await SubmitAsync(client, Body(url, ["progress"], seed: 78));
        Assert.Equal("succeeded", (await ServingFixture.WaitForTerminalAsync(client, id)).GetProperty("status").GetString());

        // The delivery of a progress event that was queued while the job ran, run after it ended.
        var delivery = ActivatorUtilities.CreateInstance<WebhookDelivery>(api.Services);
        var message = new WebhookMessage(settings["Serving:Auth:DevelopmentTenant"]!, id, url, "job.progress", $"msg_{id}_progress_500", "{}");
        var result = await delivery.DeliverAsync(message, 1, CancellationToken.None);

        Assert.StartsWith("Skipped", result, StringComparison.Ordinal);
        Assert.DoesNotContain(receiver.Requests, r => r.Id.StartsWith($"msg_{id}", StringComparison.Ordinal));
        var attempt = Assert.Single(await api.Services.GetRequiredService<WebhookStore>().AttemptsAsync(id, CancellationToken.None));
        Assert.Equal("skipped", attempt.Outcome);
    }
}
