using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Async.Serving.Jobs;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The result cache (docs/cache.md) against the real stack: hits and misses, the key's parts,
/// opting out, invalidation by a model's files, TTL and the byte bound, single flight, and events of
/// a hit. Jobs run on a private model with a worker of this build that a test starts when it wants
/// (before or after its submits), so worker executions are counted exactly: a job's <c>attempts</c>.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class CacheTests(ServingFixture serving)
{
    private static object Body(PrivateModels models, byte[] image, object? parameters = null, bool? cache = null, object? webhook = null) => new
    {
        pipeline = "image.embed",
        model = models.Name,
        input = new { base64 = Convert.ToBase64String(image) },
        @params = parameters,
        cache,
        webhook,
    };

    /// <summary>An API over <paramref name="models"/> with the cache on, for a tenant of its own unless given.</summary>
    private WebApplicationFactory<Program> Api(PrivateModels models, string? tenant = null, IDictionary<string, string?>? settings = null)
    {
        var all = new Dictionary<string, string?>
        {
            ["Serving:Models:Path"] = models.Path,
            ["Serving:Cache:Enabled"] = "true",
            ["Serving:Auth:DevelopmentTenant"] = tenant ?? "cache-" + Guid.NewGuid().ToString("N")[..8],
        };
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>())
        {
            all[k] = v;
        }

        return serving.CreateApi(all);
    }

    /// <summary>Submits and waits for the end (up to 30 s); the finished job.</summary>
    private static async Task<JsonElement> RunAsync(HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs?wait=30", body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var job = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        return job;
    }

    private static async Task<JsonElement> SubmitAsync(HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs", body);
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static string Cache(JsonElement job) => job.GetProperty("cache").GetString()!;

    private static int Attempts(JsonElement job) => job.GetProperty("attempts").GetInt32();

    private static string Output(JsonElement job) => job.GetProperty("output").GetRawText();

    [Fact]
    public async Task A_second_identical_submit_is_a_hit_with_the_same_output_and_no_worker_run()
    {
        await using var worker = new PrivateWorker();
        await worker.StartAsync();
        await using var api = Api(worker.Models);
        using var client = serving.Client(api);
        var image = TestImages.Scene(301, 320, 240);

        var first = await RunAsync(client, Body(worker.Models, image, new { a = 1, b = new { c = 2, d = 3 } }));
        Assert.Equal("miss", Cache(first));
        Assert.Equal(1, Attempts(first));
        var executionMs = first.GetProperty("execution_ms").GetInt64();

        // The same params in another key order and spacing: the same key.
        var second = await RunAsync(client, Body(worker.Models, image, JsonDocument.Parse("""{ "b": {"d": 3, "c": 2}, "a": 1 }""").RootElement));
        Assert.NotEqual(first.GetProperty("id").GetString(), second.GetProperty("id").GetString());
        Assert.Equal("hit", Cache(second));
        Assert.Equal(0, Attempts(second));
        Assert.Equal(JsonValueKind.Null, second.GetProperty("execution_ms").ValueKind);
        Assert.Equal(JsonValueKind.Null, second.GetProperty("started_at").ValueKind);
        Assert.Equal(Output(first), Output(second));
        Assert.Equal(1.0, second.GetProperty("progress").GetDouble());

        // Read back later, the hit is the same resource.
        var read = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{second.GetProperty("id").GetString()}");
        Assert.Equal("hit", Cache(read));
        Assert.Equal(Output(first), Output(read));

        // The ledger records the hit and what it saved; usage counts it per model.
        var row = await LedgerTests.WaitForRowAsync(api, second.GetProperty("id").GetString()!, "succeeded");
        Assert.Equal("hit", row.Cache);
        Assert.Equal(executionMs, row.SavedMs);
        Assert.Equal("miss", (await LedgerTests.WaitForRowAsync(api, first.GetProperty("id").GetString()!, "succeeded")).Cache);
        var usage = await client.GetFromJsonAsync<JsonElement>("/v1/usage");
        var line = Assert.Single(usage.GetProperty("data").EnumerateArray(), l => l.GetProperty("model").GetString() == worker.Models.Name + "@1");
        Assert.Equal(2, line.GetProperty("jobs").GetInt64());
        Assert.Equal(1, line.GetProperty("cache_hits").GetInt64());
        Assert.Equal(0.5, line.GetProperty("cache_hit_rate").GetDouble());
        Assert.Equal(executionMs, line.GetProperty("saved_compute_ms").GetInt64());

        // The metrics count the hit and the miss, and the entries the cache holds.
        using var management = ServingFixture.ManagementClient(api);
        var metrics = await management.GetStringAsync("/metrics");
        Assert.Contains($"serving_cache_lookups_total{{pipeline=\"image.embed\",model=\"{worker.Models.Name}@1\",result=\"hit\"}} 1", metrics, StringComparison.Ordinal);
        Assert.Contains($"serving_cache_lookups_total{{pipeline=\"image.embed\",model=\"{worker.Models.Name}@1\",result=\"miss\"}} 1", metrics, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^serving_cache_entries [1-9]", metrics);
        Assert.Matches(@"(?m)^serving_cache_bytes [1-9]", metrics);
    }

    [Fact]
    public async Task Jobs_of_the_cache_keep_their_priority_requested_model_and_routing_key()
    {
        await using var worker = new PrivateWorker();
        await worker.StartAsync();
        await using var api = Api(worker.Models);
        using var client = serving.Client(api);
        var body = new
        {
            pipeline = "image.embed",
            model = worker.Models.Name,
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(307, 320, 240)) },
            priority = "high",
            routing_key = "user-7",
        };

        foreach (var expected in new[] { "miss", "hit" })
        {
            var job = await RunAsync(client, body);
            Assert.Equal(expected, Cache(job));
            Assert.Equal("high", job.GetProperty("priority").GetString());
            Assert.Equal(worker.Models.Name, job.GetProperty("requested_model").GetString());
            Assert.Equal("user-7", job.GetProperty("routing_key").GetString());
            Assert.Equal(worker.Models.Name + "@1", job.GetProperty("model").GetString());
        }
    }

    [Fact]
    public async Task Other_params_inputs_tenants_and_an_opt_out_miss_while_a_shared_cache_serves_every_tenant()
    {
        await using var worker = new PrivateWorker();
        await worker.StartAsync();
        await using var api = Api(worker.Models);
        using var client = serving.Client(api);
        var image = TestImages.Scene(302, 320, 240);
        Assert.Equal("miss", Cache(await RunAsync(client, Body(worker.Models, image, new { k = 1 }))));

        Assert.Equal("miss", Cache(await RunAsync(client, Body(worker.Models, image, new { k = 2 }))));
        Assert.Equal("miss", Cache(await RunAsync(client, Body(worker.Models, TestImages.Scene(303, 320, 240), new { k = 1 }))));
        var optedOut = await RunAsync(client, Body(worker.Models, image, new { k = 1 }, cache: false));
        Assert.Equal("off", Cache(optedOut));
        Assert.Equal(1, Attempts(optedOut));

        // The multipart form takes the opt-out in its request part.
        using (var form = new MultipartFormDataContent())
        {
            form.Add(new ByteArrayContent(image) { Headers = { ContentType = new("image/jpeg") } }, "file", "scene.jpg");
            form.Add(new StringContent(JsonSerializer.Serialize(new { pipeline = "image.embed", model = worker.Models.Name, @params = new { k = 1 }, cache = false })), "request");
            var response = await client.PostAsync("/v1/jobs?wait=30", form);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("off", Cache(await response.Content.ReadFromJsonAsync<JsonElement>()));
        }

        Assert.Equal("hit", Cache(await RunAsync(client, Body(worker.Models, image, new { k = 1 }))));

        // Another tenant has a cache of its own...
        await using var other = Api(worker.Models);
        using var otherClient = serving.Client(other);
        Assert.Equal("miss", Cache(await RunAsync(otherClient, Body(worker.Models, image, new { k = 1 }))));

        // ...unless the cache is shared: then one tenant's output serves another.
        var shared = new Dictionary<string, string?> { ["Serving:Cache:Shared"] = "true" };
        await using var sharedA = Api(worker.Models, settings: shared);
        await using var sharedB = Api(worker.Models, settings: shared);
        using var clientA = serving.Client(sharedA);
        using var clientB = serving.Client(sharedB);
        var computed = await RunAsync(clientA, Body(worker.Models, image, new { k = 3 }));
        Assert.Equal("miss", Cache(computed));
        var served = await RunAsync(clientB, Body(worker.Models, image, new { k = 3 }));
        Assert.Equal("hit", Cache(served));
        Assert.Equal(Output(computed), Output(served));
    }

    [Fact]
    public async Task Changing_a_model_versions_files_invalidates_its_entries()
    {
        await using var worker = new PrivateWorker();
        await worker.StartAsync();
        await using var api = Api(worker.Models);
        using var client = serving.Client(api);
        var image = TestImages.Scene(304, 320, 240);
        Assert.Equal("miss", Cache(await RunAsync(client, Body(worker.Models, image))));
        Assert.Equal("hit", Cache(await RunAsync(client, Body(worker.Models, image))));

        // New files in place (same names, same API process): the old entry is never served again.
        var config = Path.Combine(worker.Models.Path, worker.Models.Name, "1", "config.json");
        File.WriteAllText(config, File.ReadAllText(config) + "\n");
        Assert.Equal("miss", Cache(await RunAsync(client, Body(worker.Models, image))));
        Assert.Equal("hit", Cache(await RunAsync(client, Body(worker.Models, image))));
    }

    [Fact]
    public async Task An_entry_expires_after_the_ttl()
    {
        await using var worker = new PrivateWorker();
        await worker.StartAsync();
        await using var api = Api(worker.Models, settings: new Dictionary<string, string?> { ["Serving:Cache:Ttl"] = "00:00:01" });
        using var client = serving.Client(api);
        var image = TestImages.Scene(305, 320, 240);
        Assert.Equal("miss", Cache(await RunAsync(client, Body(worker.Models, image))));

        await Task.Delay(TimeSpan.FromSeconds(2)); // past the TTL (a bound on age, not a measured time)
        Assert.Equal("miss", Cache(await RunAsync(client, Body(worker.Models, image))));
    }

    [Fact]
    public async Task The_byte_bound_evicts_the_oldest_entry_of_a_shard_and_skips_entries_over_the_entry_limit()
    {
        await using var worker = new PrivateWorker();
        await worker.StartAsync();
        var image = TestImages.Scene(306, 320, 240);

        // How large an entry of this model is: its output, as the job store holds it.
        long entryBytes;
        await using (var probe = Api(worker.Models))
        {
            using var probeClient = serving.Client(probe);
            var job = await RunAsync(probeClient, Body(worker.Models, image, new { probe = true }));
            var redis = probe.Services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>().GetDatabase();
            entryBytes = (long)await redis.StringLengthAsync(RedisJobStore.ResultKey(job.GetProperty("id").GetString()!)) + 16;
        }

        // Each shard holds one and a half entries: storing a second entry in a shard evicts the first.
        var shardBytes = entryBytes * 3 / 2;
        await using var api = Api(worker.Models, settings: new Dictionary<string, string?>
        {
            ["Serving:Cache:MaxBytes"] = (shardBytes * RedisJobStore.ShardCount).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Serving:Cache:MaxEntryBytes"] = shardBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        using var client = serving.Client(api);
        var first = await RunAsync(client, Body(worker.Models, image, new { n = 0 }));
        Assert.Equal("miss", Cache(first));
        var shard = RedisJobStore.ShardOf(first.GetProperty("id").GetString()!);

        // Other params until one lands in the same shard (a job's id is in its key's shard).
        int? sameShard = null;
        for (var n = 1; n <= 200 && sameShard is null; n++)
        {
            var job = await RunAsync(client, Body(worker.Models, image, new { n }));
            Assert.Equal("miss", Cache(job));
            if (RedisJobStore.ShardOf(job.GetProperty("id").GetString()!) == shard)
            {
                sameShard = n;
            }
        }

        Assert.NotNull(sameShard);
        Assert.Equal("hit", Cache(await RunAsync(client, Body(worker.Models, image, new { n = sameShard }))));
        Assert.Equal("miss", Cache(await RunAsync(client, Body(worker.Models, image, new { n = 0 })))); // evicted

        var redisDb = api.Services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>().GetDatabase();
        Assert.InRange((long)await redisDb.StringGetAsync(RedisJobStore.CacheBytes(shard)), 1, shardBytes);

        // An output larger than the entry limit is computed every time.
        await using var small = Api(worker.Models, settings: new Dictionary<string, string?> { ["Serving:Cache:MaxEntryBytes"] = "100" });
        using var smallClient = serving.Client(small);
        Assert.Equal("miss", Cache(await RunAsync(smallClient, Body(worker.Models, image, new { big = 1 }))));
        Assert.Equal("miss", Cache(await RunAsync(smallClient, Body(worker.Models, image, new { big = 1 }))));
    }

    [Fact]
    public async Task Concurrent_identical_submits_share_one_inference_and_all_succeed_with_its_output()
    {
        await using var worker = new PrivateWorker();
        await using var api = Api(worker.Models);
        using var client = serving.Client(api);
        var image = TestImages.Scene(307, 320, 240);

        // No worker yet: every submit arrives while the first is queued.
        var jobs = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => SubmitAsync(client, Body(worker.Models, image))));
        Assert.All(jobs, job => Assert.Equal("miss", Cache(job)));
        Assert.Equal(8, jobs.Select(j => j.GetProperty("id").GetString()).Distinct().Count());

        await worker.StartAsync();
        var done = await Task.WhenAll(jobs.Select(j => ServingFixture.WaitForTerminalAsync(client, j.GetProperty("id").GetString()!)));
        Assert.All(done, job => Assert.Equal("succeeded", job.GetProperty("status").GetString()));
        Assert.Equal(1, done.Sum(Attempts)); // one worker execution for the eight jobs
        Assert.Single(done.Select(Output).Distinct());
        Assert.Single(done, job => Cache(job) == "miss");
        Assert.Equal(7, done.Count(job => Cache(job) == "hit" && job.GetProperty("execution_ms").ValueKind == JsonValueKind.Null));

        using var management = ServingFixture.ManagementClient(api);
        Assert.Contains($"serving_cache_lookups_total{{pipeline=\"image.embed\",model=\"{worker.Models.Name}@1\",result=\"follow\"}} 7",
            await management.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Followers_fail_with_their_leaders_error()
    {
        await using var worker = new PrivateWorker();
        await using var api = Api(worker.Models);
        using var client = serving.Client(api);
        var broken = TestImages.TruncatedJpeg();

        var leader = await SubmitAsync(client, Body(worker.Models, broken));
        var follower = await SubmitAsync(client, Body(worker.Models, broken));
        await worker.StartAsync();

        var ended = await Task.WhenAll(new[] { leader, follower }.Select(j => ServingFixture.WaitForTerminalAsync(client, j.GetProperty("id").GetString()!)));
        Assert.All(ended, job => Assert.Equal("failed", job.GetProperty("status").GetString()));
        Assert.Equal(ended[0].GetProperty("error").GetProperty("code").GetString(), ended[1].GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(ended[0].GetProperty("error").GetProperty("message").GetString(), ended[1].GetProperty("error").GetProperty("message").GetString());
        Assert.True(Attempts(ended[0]) >= 1);
        Assert.Equal(0, Attempts(ended[1])); // the follower never ran

        // Nothing was stored: a later submit runs again.
        var again = await SubmitAsync(client, Body(worker.Models, broken));
        Assert.Equal("miss", Cache(again));
        var againEnded = await ServingFixture.WaitForTerminalAsync(client, again.GetProperty("id").GetString()!);
        Assert.Equal("failed", againEnded.GetProperty("status").GetString());
        Assert.True(Attempts(againEnded) >= 1);
    }

    [Fact]
    public async Task Cancelling_a_follower_leaves_the_leader_and_cancelling_the_leader_lets_its_followers_run()
    {
        await using var worker = new PrivateWorker();
        await using var api = Api(worker.Models);
        using var client = serving.Client(api);

        // A follower cancelled: the leader and the other follower go on.
        var image = TestImages.Scene(308, 320, 240);
        var leader = await SubmitAsync(client, Body(worker.Models, image));
        var cancelled = await SubmitAsync(client, Body(worker.Models, image));
        var follower = await SubmitAsync(client, Body(worker.Models, image));
        var cancel = await client.PostAsync($"/v1/jobs/{cancelled.GetProperty("id").GetString()}/cancel", null);
        await Problems.AssertStatusAsync(cancel, HttpStatusCode.Accepted);
        Assert.Equal("queued", (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{leader.GetProperty("id").GetString()}")).GetProperty("status").GetString());

        // A leader cancelled: its followers are sent on their own, each computing its output.
        var other = TestImages.Scene(309, 320, 240);
        var cancelledLeader = await SubmitAsync(client, Body(worker.Models, other));
        var released = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => SubmitAsync(client, Body(worker.Models, other))));
        cancel = await client.PostAsync($"/v1/jobs/{cancelledLeader.GetProperty("id").GetString()}/cancel", null);
        await Problems.AssertStatusAsync(cancel, HttpStatusCode.Accepted);

        await worker.StartAsync();
        var leaderDone = await ServingFixture.WaitForTerminalAsync(client, leader.GetProperty("id").GetString()!);
        var followerDone = await ServingFixture.WaitForTerminalAsync(client, follower.GetProperty("id").GetString()!);
        Assert.Equal("succeeded", leaderDone.GetProperty("status").GetString());
        Assert.Equal("succeeded", followerDone.GetProperty("status").GetString());
        Assert.Equal("hit", Cache(followerDone));
        Assert.Equal(Output(leaderDone), Output(followerDone));
        Assert.Equal("cancelled", (await ServingFixture.WaitForTerminalAsync(client, cancelled.GetProperty("id").GetString()!)).GetProperty("status").GetString());

        Assert.Equal("cancelled", (await ServingFixture.WaitForTerminalAsync(client, cancelledLeader.GetProperty("id").GetString()!)).GetProperty("status").GetString());
        var releasedDone = await Task.WhenAll(released.Select(j => ServingFixture.WaitForTerminalAsync(client, j.GetProperty("id").GetString()!)));
        Assert.All(releasedDone, job => Assert.Equal("succeeded", job.GetProperty("status").GetString()));
        Assert.All(releasedDone, job => Assert.Equal(1, Attempts(job)));
        Assert.Single(releasedDone.Select(Output).Distinct());
    }

    [Fact]
    public async Task A_hit_sends_its_completed_webhook_and_events_like_a_computed_job()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var worker = new PrivateWorker();
        await worker.StartAsync();
        await using var api = Api(worker.Models, settings: new Dictionary<string, string?>
        {
            ["Serving:Security:AllowPrivateNetworks"] = "true",
            ["Serving:Hangfire:RunServer"] = "true",
            ["Serving:Webhooks:RunRelay"] = "true",
        });
        using var client = serving.Client(api);
        var image = TestImages.Scene(310, 320, 240);
        var computed = await RunAsync(client, Body(worker.Models, image));

        var url = receiver.NewUrl();
        var hit = await SubmitAsync(client, Body(worker.Models, image, webhook: new { url, events = new[] { "started", "completed" } }));
        Assert.Equal("hit", Cache(hit));
        var hook = Assert.Single(await receiver.WaitForAsync(url, 1, ServingFixture.JobWait));
        Assert.Equal($"msg_{hit.GetProperty("id").GetString()}_completed", hook.Id);
        var data = JsonDocument.Parse(hook.Body).RootElement.GetProperty("data");
        Assert.Equal("succeeded", data.GetProperty("status").GetString());
        Assert.Equal("hit", data.GetProperty("cache").GetString());
        Assert.Equal(Output(computed), data.GetProperty("output").GetRawText());

        // The events stream of a hit ends at once with its completion.
        var events = await client.GetStringAsync($"/v1/jobs/{hit.GetProperty("id").GetString()}/events");
        Assert.Contains("succeeded", events, StringComparison.Ordinal);
    }
}
