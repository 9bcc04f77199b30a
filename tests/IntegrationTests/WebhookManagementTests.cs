using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Async.Serving.Api.Auth;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The tenant's webhook management routes against the real stack: delivery history, redelivery,
/// re-enabling a URL disabled by 410, and the signed test event, delivered by an API host with a
/// Hangfire server to a local receiver.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class WebhookManagementTests(ServingFixture serving)
{
    private static readonly TimeSpan DeliveryWait = ServingFixture.JobWait;

    private static Dictionary<string, string?> Settings(bool allowPrivate = true) => new()
    {
        ["Serving:Auth:DevelopmentTenant"] = "webhooks-manage-" + Guid.NewGuid().ToString("N")[..8],
        ["Serving:Security:AllowPrivateNetworks"] = allowPrivate ? "true" : "false",
        ["Serving:Hangfire:RunServer"] = "true",
        ["Serving:Webhooks:RunRelay"] = "true",
        ["Serving:Webhooks:RetryDelays:0"] = "00:00:01",
        ["Serving:Webhooks:Timeout"] = "00:00:05",
    };

    private static async Task<JsonElement> ListAsync(HttpClient client, string query)
    {
        var response = await client.GetAsync("/v1/webhooks/deliveries" + query);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>Polls the delivery history until <paramref name="count"/> rows match, bounded.</summary>
    private static async Task<List<JsonElement>> WaitForDeliveriesAsync(HttpClient client, string query, int count)
    {
        var deadline = DateTime.UtcNow + DeliveryWait;
        while (true)
        {
            var rows = (await ListAsync(client, query)).GetProperty("data").EnumerateArray().ToList();
            if (rows.Count >= count)
            {
                return rows;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{rows.Count} of {count} deliveries recorded for {query}");
            await Task.Delay(100);
        }
    }

    private static bool Verifies(string secret, ReceivedWebhook hook)
    {
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        var expected = "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{hook.Id}.{hook.Timestamp}.{hook.Body}")));
        return hook.Signature.Split(' ').Contains(expected);
    }

    [Fact]
    public async Task Deliveries_are_listed_newest_first_filtered_paged_and_redelivered_with_the_same_id_and_body()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(Settings());
        using var client = serving.Client(api);
        var url = receiver.NewUrl();
        var submitted = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "image.embed",
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(81, 96, 64)) },
            webhook = new { url },
        });
        await Problems.AssertStatusAsync(submitted, HttpStatusCode.Accepted);
        var jobId = (await submitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var original = Assert.Single(await receiver.WaitForAsync(url, 1, DeliveryWait));

        var delivery = Assert.Single(await WaitForDeliveriesAsync(client, $"?job_id={jobId}", 1));
        Assert.Equal("delivered", delivery.GetProperty("status").GetString());
        Assert.Equal("job.completed", delivery.GetProperty("event_type").GetString());
        Assert.Equal(original.Id, delivery.GetProperty("message_id").GetString());
        Assert.Equal(url, delivery.GetProperty("url").GetString());
        Assert.True(delivery.GetProperty("redeliverable").GetBoolean());
        Assert.Empty((await ListAsync(client, $"?job_id={jobId}&status=failed")).GetProperty("data").EnumerateArray());

        var redeliver = await client.PostAsync($"/v1/webhooks/deliveries/{delivery.GetProperty("id").GetString()}/redeliver", null);
        Assert.True(redeliver.StatusCode == HttpStatusCode.Accepted, await redeliver.Content.ReadAsStringAsync());
        var again = (await receiver.WaitForAsync(url, 2, DeliveryWait))[1];
        Assert.Equal(original.Id, again.Id); // the same message: a receiver that saw it can drop it
        Assert.Equal(original.Body, again.Body);
        var secret = (await client.GetFromJsonAsync<JsonElement>("/v1/webhooks/secret")).GetProperty("secret").GetString()!;
        Assert.True(Verifies(secret, again));

        var both = await WaitForDeliveriesAsync(client, $"?job_id={jobId}", 2);
        Assert.True(long.Parse(both[0].GetProperty("id").GetString()!) > long.Parse(both[1].GetProperty("id").GetString()!)); // newest first
        var page1 = await ListAsync(client, $"?job_id={jobId}&limit=1");
        Assert.Equal(both[0].GetProperty("id").GetString(), Assert.Single(page1.GetProperty("data").EnumerateArray()).GetProperty("id").GetString());
        var cursor = page1.GetProperty("next_cursor").GetString();
        var page2 = await ListAsync(client, $"?job_id={jobId}&limit=1&cursor={cursor}");
        Assert.Equal(both[1].GetProperty("id").GetString(), Assert.Single(page2.GetProperty("data").EnumerateArray()).GetProperty("id").GetString());

        // Another tenant sees none of it and cannot redeliver it.
        var stranger = await api.Services.GetRequiredService<ApiKeyStore>().CreateAsync("webhooks-stranger-" + Guid.NewGuid().ToString("N")[..8], "s", null, CancellationToken.None);
        using var strangerClient = serving.Client(api, stranger.Key);
        Assert.Empty((await ListAsync(strangerClient, $"?job_id={jobId}")).GetProperty("data").EnumerateArray());
        await Problems.AssertAsync(
            await strangerClient.PostAsync($"/v1/webhooks/deliveries/{delivery.GetProperty("id").GetString()}/redeliver", null), HttpStatusCode.NotFound, "not_found");
        await Problems.AssertAsync(await client.PostAsync("/v1/webhooks/deliveries/999999999999/redeliver", null), HttpStatusCode.NotFound, "not_found");
        await Problems.AssertAsync(await client.GetAsync("/v1/webhooks/deliveries?status=lost"), HttpStatusCode.BadRequest, "input_invalid");
        await Problems.AssertAsync(await client.GetAsync("/v1/webhooks/deliveries?limit=0"), HttpStatusCode.BadRequest, "input_invalid");
    }

    [Fact]
    public async Task A_test_event_is_signed_a_410_disables_the_url_and_enable_turns_it_back_on()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(Settings());
        using var client = serving.Client(api);
        var secret = (await client.GetFromJsonAsync<JsonElement>("/v1/webhooks/secret")).GetProperty("secret").GetString()!;
        var url = receiver.NewUrl();

        // First test: the receiver answers 410 Gone, which disables the URL.
        receiver.Answers.Enqueue(410);
        var sent = await client.PostAsJsonAsync("/v1/webhooks/test", new { url });
        Assert.True(sent.StatusCode == HttpStatusCode.Accepted, await sent.Content.ReadAsStringAsync());
        var messageId = (await sent.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("message_id").GetString();
        var first = Assert.Single(await receiver.WaitForAsync(url, 1, DeliveryWait));
        Assert.Equal(messageId, first.Id);
        Assert.True(Verifies(secret, first));
        var body = JsonDocument.Parse(first.Body).RootElement;
        Assert.Equal("webhook.test", body.GetProperty("type").GetString());
        var disabled = await WaitForDeliveriesAsync(client, "?status=disabled", 1);
        Assert.Equal(JsonValueKind.Null, disabled[0].GetProperty("job_id").ValueKind);

        // While disabled, a test is recorded as skipped and nothing is sent.
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsJsonAsync("/v1/webhooks/test", new { url })).StatusCode);
        await WaitForDeliveriesAsync(client, "?status=skipped", 1);
        Assert.Single(receiver.Requests);

        var enabled = await client.PostAsJsonAsync("/v1/webhooks/endpoints/enable", new { url });
        Assert.Equal(HttpStatusCode.OK, enabled.StatusCode);
        Assert.True((await enabled.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("was_disabled").GetBoolean());
        var enabledAgain = await client.PostAsJsonAsync("/v1/webhooks/endpoints/enable", new { url });
        Assert.False((await enabledAgain.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("was_disabled").GetBoolean());

        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsJsonAsync("/v1/webhooks/test", new { url })).StatusCode);
        var delivered = (await receiver.WaitForAsync(url, 2, DeliveryWait))[1];
        Assert.True(Verifies(secret, delivered));
        await WaitForDeliveriesAsync(client, "?status=delivered", 1);

        await Problems.AssertAsync(await client.PostAsJsonAsync("/v1/webhooks/test", new { url = "ftp://example.com/x" }), HttpStatusCode.BadRequest, "input_invalid");
        await Problems.AssertAsync(await client.PostAsJsonAsync("/v1/webhooks/endpoints/enable", new { url = "not a url" }), HttpStatusCode.BadRequest, "input_invalid");
    }

    [Fact]
    public async Task The_ssrf_guard_refuses_a_test_event_to_a_private_address()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(Settings(allowPrivate: false));
        using var client = serving.Client(api);
        var url = receiver.NewUrl();

        await Problems.AssertAsync(await client.PostAsJsonAsync("/v1/webhooks/test", new { url }), HttpStatusCode.UnprocessableEntity, "input_invalid");
        await Problems.AssertAsync(
            await client.PostAsJsonAsync("/v1/webhooks/test", new { url = "http://169.254.169.254/latest/meta-data" }), HttpStatusCode.UnprocessableEntity, "input_invalid");
        Assert.Empty((await ListAsync(client, "")).GetProperty("data").EnumerateArray());
        Assert.Empty(receiver.Requests);
    }
}
