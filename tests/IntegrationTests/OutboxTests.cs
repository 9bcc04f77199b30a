using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Async.Serving.Api.Webhooks;
using Async.Serving.Jobs;
using Hangfire;
using Hangfire.Common;
using Hangfire.States;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The job store's outbox: a state change and its event are one step, whoever makes the change, and
/// the relay hands each event to Hangfire at least once, however long PostgreSQL is away. The test
/// plays the worker on a model no worker serves, so it controls exactly which steps happen.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class OutboxTests(ServingFixture serving)
{
    private static Dictionary<string, string?> Settings(PrivateModels models, bool relay) => new()
    {
        ["Serving:Models:Path"] = models.Path,
        ["Serving:Auth:DevelopmentTenant"] = "outbox-" + Guid.NewGuid().ToString("N")[..8],
        ["Serving:Security:AllowPrivateNetworks"] = "true",
        ["Serving:Hangfire:RunServer"] = relay ? "true" : "false",
        ["Serving:Webhooks:RunRelay"] = relay ? "true" : "false",
    };

    private static async Task<string> SubmitAsync(HttpClient client, PrivateModels models, string url, string[] events)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "image.embed",
            model = models.Name,
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(90, 64, 48)) },
            webhook = new { url, events },
        });
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    /// <summary>The outbox entries of one job, oldest first.</summary>
    private static async Task<StreamEntry[]> EntriesAsync(IServiceProvider services, string id)
    {
        var db = services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
        var all = await db.StreamRangeAsync(RedisJobStore.EventStream(RedisJobStore.ShardOf(id)));
        return [.. all.Where(e => e["id"] == id)];
    }

    [Fact]
    public async Task A_job_ended_by_a_worker_that_dies_before_announcing_anything_still_gets_its_webhooks()
    {
        using var models = new PrivateModels();
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(Settings(models, relay: true));
        using var client = serving.Client(api);
        var url = receiver.NewUrl();
        var id = await SubmitAsync(client, models, url, ["started", "completed"]);

        // What a worker does before it dies: start the job and write its output. It publishes nothing.
        var store = api.Services.GetRequiredService<RedisJobStore>();
        Assert.True((await store.TryStartAsync(id, "worker-that-dies")).Started);
        Assert.True(await store.CompleteAsync(id, """{"embedding":[1.0],"dims":1}""", 12));

        var hooks = await receiver.WaitForAsync(url, 2, ServingFixture.JobWait);
        var started = Assert.Single(hooks, h => h.Id == $"msg_{id}_started");
        var completed = Assert.Single(hooks, h => h.Id == $"msg_{id}_completed");
        var startedData = JsonDocument.Parse(started.Body).RootElement.GetProperty("data");
        Assert.Equal("running", startedData.GetProperty("status").GetString()); // the job as it started, though it has ended since
        Assert.Equal(1, startedData.GetProperty("attempts").GetInt32());
        Assert.Equal(JsonValueKind.Null, startedData.GetProperty("output").ValueKind);
        var completedData = JsonDocument.Parse(completed.Body).RootElement.GetProperty("data");
        Assert.Equal("succeeded", completedData.GetProperty("status").GetString());
        Assert.Equal(1, completedData.GetProperty("output").GetProperty("dims").GetInt32());
    }

    [Fact]
    public async Task Every_ending_writes_its_event_with_it_and_only_the_events_the_webhook_asked_for()
    {
        using var models = new PrivateModels();
        await using var api = serving.CreateApi(Settings(models, relay: false));
        using var client = serving.Client(api);
        var store = api.Services.GetRequiredService<RedisJobStore>();

        // Cancelled while queued (the API), expired (maintenance or a worker), failed (a worker), a
        // cancel found by a redelivery: each ending carries its job.completed entry.
        var cancelled = await SubmitAsync(client, models, "http://127.0.0.1:9/a", ["completed"]);
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync($"/v1/jobs/{cancelled}/cancel", null)).StatusCode);
        var expired = await SubmitAsync(client, models, "http://127.0.0.1:9/b", ["completed"]);
        Assert.True(await store.ExpireAsync(expired));
        var failed = await SubmitAsync(client, models, "http://127.0.0.1:9/c", ["completed"]);
        Assert.True(await store.FailAsync(failed, "inference_failed", "boom"));
        var orphaned = await SubmitAsync(client, models, "http://127.0.0.1:9/d", ["completed"]);
        Assert.True((await store.TryStartAsync(orphaned, "w1")).Started);
        Assert.Equal(CancelOutcome.Requested, await store.CancelAsync(orphaned));
        Assert.True((await store.TryStartAsync(orphaned, "w2")).CancelledNow);

        foreach (var (id, status) in new[] { (cancelled, "cancelled"), (expired, "expired"), (failed, "failed"), (orphaned, "cancelled") })
        {
            var entry = Assert.Single(await EntriesAsync(api.Services, id));
            Assert.Equal("job.completed", entry["type"].ToString());
            Assert.Equal(status, entry["status"].ToString());
        }

        // Started and progress only where asked for; a job ending twice (a late redelivery) writes one event.
        var plain = await SubmitAsync(client, models, "http://127.0.0.1:9/e", ["completed"]);
        Assert.True((await store.TryStartAsync(plain, "w1")).Started);
        Assert.True(await store.SetProgressAsync(plain, 0.5, "w1"));
        Assert.True(await store.CompleteAsync(plain, """{"dims":0}""", 1));
        Assert.False(await store.CompleteAsync(plain, """{"dims":0}""", 1));
        Assert.Equal(["job.completed"], (await EntriesAsync(api.Services, plain)).Select(e => e["type"].ToString()));

        var all = await SubmitAsync(client, models, "http://127.0.0.1:9/f", ["started", "progress", "completed"]);
        Assert.True((await store.TryStartAsync(all, "w1")).Started);
        Assert.True(await store.SetProgressAsync(all, 0.25, "w1"));
        Assert.True(await store.CompleteAsync(all, """{"dims":0}""", 1));
        Assert.Equal(["job.started", "job.progress", "job.completed"], (await EntriesAsync(api.Services, all)).Select(e => e["type"].ToString()));
    }

    [Fact]
    public async Task While_hangfire_cannot_take_deliveries_the_events_wait_and_are_relayed_once_it_can()
    {
        using var models = new PrivateModels();
        await using var api = serving.CreateApi(Settings(models, relay: false));
        using var client = serving.Client(api);
        var store = api.Services.GetRequiredService<RedisJobStore>();
        var first = await SubmitAsync(client, models, "http://127.0.0.1:9/first", ["completed"]);
        var second = await SubmitAsync(client, models, "http://127.0.0.1:9/second", ["completed"]);
        Assert.True(await store.FailAsync(first, "inference_failed", "first"));
        Assert.True(await store.FailAsync(second, "inference_failed", "second"));

        // PostgreSQL "down" for five rounds: every enqueue throws, as Hangfire's does without its database.
        var hangfire = new FlakyJobClient(failures: 5);
        var relay = new JobEventRelay(
            api.Services.GetRequiredService<IConnectionMultiplexer>(), store, hangfire,
            api.Services.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>(),
            api.Services.GetRequiredService<IOptions<WebhookOptions>>(), TimeProvider.System, NullLogger<JobEventRelay>.Instance);
        for (var round = 0; round < 5; round++)
        {
            await Assert.ThrowsAsync<InvalidOperationException>(relay.PumpAsync);
            Assert.Single(await EntriesAsync(api.Services, first)); // still waiting in the outbox
        }

        // Up again: the waiting events are relayed (other tests' leftovers may come along), each once, and leave the outbox.
        while (await relay.PumpAsync() > 0)
        {
        }

        Assert.Equal(1, hangfire.Enqueued.Count(m => m.MessageId == $"msg_{first}_completed"));
        Assert.Equal(1, hangfire.Enqueued.Count(m => m.MessageId == $"msg_{second}_completed"));
        Assert.Empty(await EntriesAsync(api.Services, first));
        Assert.Empty(await EntriesAsync(api.Services, second));
        var body = JsonDocument.Parse(hangfire.Enqueued.Single(m => m.JobId == first).Body).RootElement;
        Assert.Equal("failed", body.GetProperty("data").GetProperty("status").GetString());
        Assert.Equal("first", body.GetProperty("data").GetProperty("error").GetProperty("message").GetString());
    }

    /// <summary>A Hangfire client that throws for its first calls, then records the webhook messages it is given.</summary>
    private sealed class FlakyJobClient(int failures) : IBackgroundJobClient
    {
        private int _failures = failures;

        public List<WebhookMessage> Enqueued { get; } = [];

        public string Create(Job job, IState state)
        {
            if (_failures-- > 0)
            {
                throw new InvalidOperationException("The PostgreSQL server is not reachable.");
            }

            Enqueued.Add((WebhookMessage)job.Args[0]);
            return Enqueued.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        public bool ChangeState(string jobId, IState state, string expectedState) => true;
    }
}
