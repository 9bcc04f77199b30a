using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Async.Serving.Api.Auth;
using Async.Serving.Api.Routing;
using Async.Serving.Breakers;
using Async.Serving.Models;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// Canary and A/B routing against the real stack: a private model with versions 1 and 2 (a worker of
/// this build serves both), routing tables set through <c>/v1/models/{name}/routing</c>. Which
/// version a routing key lands on is computed here with <see cref="RoutingTable.Point"/>, so the
/// sticky tests are exact; only the split without keys is statistical.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class RoutingTests(ServingFixture serving) : IAsyncLifetime
{
    private readonly PrivateWorker _worker = new(versions: 2);
    private WebApplicationFactory<Program> _api = null!;

    private PrivateModels Models => _worker.Models;

    private string Name => Models.Name;

    public async Task InitializeAsync()
    {
        await _worker.StartAsync();
        _api = CreateApi();
    }

    public async Task DisposeAsync()
    {
        await _api.DisposeAsync();
        await _worker.DisposeAsync();
    }

    private WebApplicationFactory<Program> CreateApi(IDictionary<string, string?>? overrides = null)
    {
        var settings = new Dictionary<string, string?> { ["Serving:Models:Path"] = Models.Path };
        foreach (var (k, v) in overrides ?? new Dictionary<string, string?>())
        {
            settings[k] = v;
        }

        return serving.CreateApi(settings);
    }

    private static readonly string Image = Convert.ToBase64String(TestImages.Scene(3, 64, 48));

    private static async Task<JsonElement> SubmitAsync(HttpClient client, string model, string? routingKey = null, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs")
        {
            Content = JsonContent.Create(new { pipeline = "image.embed", model, routing_key = routingKey, input = new { base64 = Image } }),
        };
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"submit: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement;
    }

    private static async Task<string> RoutedAsync(HttpClient client, string model, string? routingKey = null) =>
        (await SubmitAsync(client, model, routingKey)).GetProperty("model").GetString()!;

    private async Task<JsonElement> SetWeightsAsync(HttpClient client, object weights)
    {
        var response = await client.PutAsJsonAsync($"/v1/models/{Name}/routing", new { weights });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"PUT routing: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement;
    }

    /// <summary>Keys whose place for this model lies in [from, to), <paramref name="count"/> of them.</summary>
    private List<string> KeysBetween(double from, double to, int count) =>
        [.. Enumerable.Range(0, 100_000).Select(i => $"user-{i}").Where(k => RoutingTable.Point(Name, k) is var p && p >= from && p < to).Take(count)];

    [Fact]
    public async Task Keys_land_where_their_place_says_stay_there_and_raising_the_canary_only_moves_keys_into_it()
    {
        using var client = serving.Client(_api);
        var table = await SetWeightsAsync(client, new Dictionary<string, int> { ["1"] = 90, ["2"] = 10 });
        Assert.Equal(90, table.GetProperty("weights").GetProperty("1").GetInt32());
        Assert.Equal(10.0, table.GetProperty("percent").GetProperty("2").GetDouble());
        Assert.EndsWith("/development", table.GetProperty("updated_by").GetString(), StringComparison.Ordinal);

        var stayOnOne = KeysBetween(0, 80, 8);
        var movers = KeysBetween(80, 90, 6);
        var canary = KeysBetween(90, 100, 6);
        foreach (var key in stayOnOne.Concat(movers))
        {
            Assert.Equal($"{Name}@1", await RoutedAsync(client, Name, key));
        }

        foreach (var key in canary)
        {
            Assert.Equal($"{Name}@2", await RoutedAsync(client, Name, key));
        }

        // Sticky: one key, 50 submits, one version; the job records what was asked and the key.
        var sticky = canary[0];
        for (var i = 0; i < 50; i++)
        {
            var job = await SubmitAsync(client, Name, sticky);
            Assert.Equal($"{Name}@2", job.GetProperty("model").GetString());
            Assert.Equal(Name, job.GetProperty("requested_model").GetString());
            Assert.Equal(sticky, job.GetProperty("routing_key").GetString());
        }

        // 10 % → 20 %: the keys in [80, 90) move to the canary, nobody leaves it, the rest stay.
        await SetWeightsAsync(client, new Dictionary<string, int> { ["1"] = 80, ["2"] = 20 });
        foreach (var key in stayOnOne)
        {
            Assert.Equal($"{Name}@1", await RoutedAsync(client, Name, key));
        }

        foreach (var key in movers.Concat(canary))
        {
            Assert.Equal($"{Name}@2", await RoutedAsync(client, Name, key));
        }

        using var metrics = ServingFixture.ManagementClient(_api);
        var text = await metrics.GetStringAsync("/metrics");
        Assert.Contains($"serving_routing_decisions_total{{model=\"{Name}\",version=\"2\"}}", text, StringComparison.Ordinal);
        Assert.Contains($"serving_routing_decisions_total{{model=\"{Name}\",version=\"1\"}}", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_key_submits_split_by_weight()
    {
        using var client = serving.Client(_api);
        await SetWeightsAsync(client, new Dictionary<string, int> { ["1"] = 90, ["2"] = 10 });
        var routed = await Task.WhenAll(Enumerable.Range(0, 400).Select(_ => RoutedAsync(client, Name)));
        var canary = routed.Count(m => m == $"{Name}@2");
        Assert.All(routed, m => Assert.True(m == $"{Name}@1" || m == $"{Name}@2", m));
        // Binomial(400, 0.1): 40 ± 6; the bounds are more than 3 standard deviations away.
        Assert.InRange(canary, 20, 68);

        // Normalised weights: 1 and 3 is 25 % and 75 %; a version at 0 gets nothing.
        var normalised = await SetWeightsAsync(client, new Dictionary<string, int> { ["1"] = 0, ["2"] = 3 });
        Assert.Equal(100.0, normalised.GetProperty("percent").GetProperty("2").GetDouble());
        var all = await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => RoutedAsync(client, Name)));
        Assert.All(all, m => Assert.Equal($"{Name}@2", m));
    }

    [Fact]
    public async Task Rollback_to_one_version_takes_effect_for_the_very_next_submit_and_on_other_instances()
    {
        await using var other = CreateApi();
        using var client = serving.Client(_api);
        using var otherClient = serving.Client(other);
        await SetWeightsAsync(client, new Dictionary<string, int> { ["1"] = 10, ["2"] = 90 });
        var onCanary = KeysBetween(10, 100, 5);
        foreach (var key in onCanary)
        {
            Assert.Equal($"{Name}@2", await RoutedAsync(client, Name, key));
            Assert.Equal($"{Name}@2", await RoutedAsync(otherClient, Name, key)); // the other instance holds the table in its cache now
        }

        await SetWeightsAsync(client, new Dictionary<string, int> { ["1"] = 100 });
        // The very next submit on this instance, with or without a key.
        Assert.Equal($"{Name}@1", await RoutedAsync(client, Name, onCanary[0]));
        Assert.Equal($"{Name}@1", await RoutedAsync(client, Name));
        foreach (var key in onCanary)
        {
            Assert.Equal($"{Name}@1", await RoutedAsync(client, Name, key));
        }

        // The other instance hears of it on the Redis channel (bounded wait, not a timing).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        string routed;
        while ((routed = await RoutedAsync(otherClient, Name, onCanary[0])) != $"{Name}@1" && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal($"{Name}@1", routed);

        // Removing the table sends the bare name to its newest version again.
        var removed = await client.DeleteAsync($"/v1/models/{Name}/routing");
        Assert.Equal(HttpStatusCode.OK, removed.StatusCode);
        var after = await removed.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Empty(after.GetProperty("weights").EnumerateObject());
        Assert.Equal("2", after.GetProperty("default_version").GetString());
        Assert.Equal($"{Name}@2", await RoutedAsync(client, Name, onCanary[0]));
    }

    [Fact]
    public async Task A_pinned_version_ignores_the_weights_and_a_replay_returns_the_first_job_whatever_routing_says_now()
    {
        using var client = serving.Client(_api);
        await SetWeightsAsync(client, new Dictionary<string, int> { ["1"] = 100 });
        var pinned = await SubmitAsync(client, $"{Name}@2");
        Assert.Equal($"{Name}@2", pinned.GetProperty("model").GetString());
        Assert.Equal($"{Name}@2", pinned.GetProperty("requested_model").GetString());

        var key = "idem-" + Guid.NewGuid().ToString("N");
        var first = await SubmitAsync(client, Name, idempotencyKey: key);
        Assert.Equal($"{Name}@1", first.GetProperty("model").GetString());
        await SetWeightsAsync(client, new Dictionary<string, int> { ["2"] = 100 });
        var replay = await SubmitAsync(client, Name, idempotencyKey: key);
        Assert.Equal(first.GetProperty("id").GetString(), replay.GetProperty("id").GetString());
        Assert.Equal($"{Name}@1", replay.GetProperty("model").GetString());

        // The routing key is part of the request: the same Idempotency-Key with another one is a mismatch.
        var keyed = "idem-" + Guid.NewGuid().ToString("N");
        await SubmitAsync(client, Name, "alice", keyed);
        using var mismatch = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs")
        {
            Content = JsonContent.Create(new { pipeline = "image.embed", model = Name, routing_key = "bob", input = new { base64 = Image } }),
        };
        mismatch.Headers.Add("Idempotency-Key", keyed);
        await Problems.AssertAsync(await client.SendAsync(mismatch), HttpStatusCode.UnprocessableEntity, "idempotency_mismatch");
    }

    [Fact]
    public async Task Routing_needs_an_admin_key_of_a_managing_tenant()
    {
        var store = serving.Api.Services.GetRequiredService<ApiKeyStore>();
        var plain = await store.CreateAsync(serving.Tenant, "plain", expiresAt: null, admin: false, CancellationToken.None);
        using var plainClient = serving.Client(_api, plain.Key);
        await Problems.AssertAsync(await plainClient.GetAsync($"/v1/models/{Name}/routing"), HttpStatusCode.Forbidden, "forbidden");
        await Problems.AssertAsync(await plainClient.PutAsJsonAsync($"/v1/models/{Name}/routing", new { weights = new { _1 = 100 } }), HttpStatusCode.Forbidden, "forbidden");
        await Problems.AssertAsync(await plainClient.DeleteAsync($"/v1/models/{Name}/routing"), HttpStatusCode.Forbidden, "forbidden");
        using var anonymous = _api.CreateClient();
        await Problems.AssertAsync(await anonymous.GetAsync($"/v1/models/{Name}/routing"), HttpStatusCode.Unauthorized, "unauthorized");

        // Tables are shared by every tenant: where managing tenants are listed, another tenant's admin key may read but not change them.
        await using var managed = CreateApi(new Dictionary<string, string?> { ["Serving:Routing:ManagingTenants:0"] = "platform-ops" });
        using var admin = serving.Client(managed);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync($"/v1/models/{Name}/routing")).StatusCode);
        await Problems.AssertAsync(await admin.PutAsJsonAsync($"/v1/models/{Name}/routing", new { weights = new Dictionary<string, int> { ["1"] = 100 } }),
            HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task Bad_weights_and_routing_keys_are_problems_naming_the_field()
    {
        // A version 0 of another pipeline beside the two image versions (a video model over version 1).
        using var models = new PrivateModels(versions: 2);
        var videoVersion = Path.Combine(models.Path, models.Name, "0");
        Directory.CreateDirectory(videoVersion);
        File.WriteAllText(Path.Combine(videoVersion, "config.json"),
            $$"""{ "pipeline": "video.analyze", "video": { "embedding_model": "{{models.Name}}@1" } }""");
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path });
        using var client = serving.Client(api);
        var url = $"/v1/models/{models.Name}/routing";

        var table = await client.GetFromJsonAsync<JsonElement>(url);
        Assert.Equal(["0", "1", "2"], table.GetProperty("versions").EnumerateArray().Select(v => v.GetString()));
        Assert.Equal(100.0, table.GetProperty("percent").GetProperty("2").GetDouble());
        Assert.Equal(JsonValueKind.Null, table.GetProperty("updated_at").ValueKind);

        await Problems.AssertAsync(await client.GetAsync("/v1/models/no-such-model/routing"), HttpStatusCode.NotFound, "not_found");
        await Problems.AssertAsync(await client.PutAsJsonAsync("/v1/models/no-such-model/routing", new { weights = new Dictionary<string, int> { ["1"] = 1 } }),
            HttpStatusCode.NotFound, "not_found");
        var unknown = await Problems.AssertAsync(await client.PutAsJsonAsync(url, new { weights = new Dictionary<string, int> { ["1"] = 90, ["7"] = 10 } }),
            HttpStatusCode.UnprocessableEntity, "unknown_model");
        Assert.True(unknown.GetProperty("errors").TryGetProperty("weights.7", out _));
        var otherPipeline = await Problems.AssertAsync(await client.PutAsJsonAsync(url, new { weights = new Dictionary<string, int> { ["0"] = 50, ["2"] = 50 } }),
            HttpStatusCode.BadRequest, "input_invalid");
        Assert.Contains("video.analyze", otherPipeline.GetProperty("errors").GetProperty("weights.0")[0].GetString(), StringComparison.Ordinal);
        var zero = await Problems.AssertAsync(await client.PutAsJsonAsync(url, new { weights = new Dictionary<string, int> { ["1"] = 0, ["2"] = 0 } }),
            HttpStatusCode.BadRequest, "input_invalid");
        Assert.True(zero.GetProperty("errors").TryGetProperty("weights", out _));
        var negative = await Problems.AssertAsync(await client.PutAsJsonAsync(url, new { weights = new Dictionary<string, int> { ["1"] = -5, ["2"] = 10 } }),
            HttpStatusCode.BadRequest, "input_invalid");
        Assert.True(negative.GetProperty("errors").TryGetProperty("weights.1", out _));
        await Problems.AssertAsync(await client.PutAsJsonAsync(url, new { weights = new { } }), HttpStatusCode.BadRequest, "input_invalid");
        await Problems.AssertAsync(await client.PutAsync(url, new StringContent("""{ "weights": { "1": 90.5 } }""", System.Text.Encoding.UTF8, "application/json")),
            HttpStatusCode.BadRequest, "input_invalid");
        // Nothing was stored by any of them.
        Assert.Empty((await client.GetFromJsonAsync<JsonElement>(url)).GetProperty("weights").EnumerateObject());

        foreach (var bad in new[] { new string('k', RoutingTable.MaxRoutingKeyLength + 1), "", "line\nbreak" })
        {
            var response = await client.PostAsJsonAsync("/v1/jobs", new { pipeline = "image.embed", model = models.Name, routing_key = bad, input = new { base64 = Image } });
            var problem = await Problems.AssertAsync(response, HttpStatusCode.BadRequest, "input_invalid");
            Assert.True(problem.GetProperty("errors").TryGetProperty("routing_key", out _));
        }
    }

    [Fact]
    public async Task An_unavailable_version_is_skipped_while_another_weighted_version_is_available()
    {
        var availability = new Unavailable(DateTimeOffset.UtcNow.AddMinutes(10), $"{Name}@2");
        await using var api = CreateApi().WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<IModelAvailability>(availability)));
        using var client = serving.Client(api);
        await SetWeightsAsync(client, new Dictionary<string, int> { ["1"] = 10, ["2"] = 90 });
        foreach (var key in KeysBetween(10, 100, 5))
        {
            Assert.Equal($"{Name}@1", await RoutedAsync(client, Name, key));
        }

        // Pinned submits and tables of one version are left to the breaker's own answer.
        Assert.Equal($"{Name}@2", await RoutedAsync(client, $"{Name}@2"));
        await SetWeightsAsync(client, new Dictionary<string, int> { ["2"] = 100 });
        Assert.Equal($"{Name}@2", await RoutedAsync(client, Name));
    }

    [Fact]
    public async Task A_routed_submit_reads_the_breaker_once_and_when_no_version_is_available_answers_503_with_what_routing_read()
    {
        // Every version unavailable by routing's reads, while their real breakers (which the intake reads
        // for a pinned submit) are closed: a 503 for a routed submit can only come from routing's answer.
        var retryAt = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.AddMinutes(10).ToUnixTimeSeconds());
        var availability = new Unavailable(retryAt, $"{Name}@1", $"{Name}@2");
        await using var api = CreateApi().WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<IModelAvailability>(availability)));
        using var client = serving.Client(api);
        await SetWeightsAsync(client, new Dictionary<string, int> { ["1"] = 10, ["2"] = 90 });

        var key = KeysBetween(10, 100, 1)[0];
        var refused = await client.PostAsJsonAsync("/v1/jobs", new { pipeline = "image.embed", model = Name, routing_key = key, input = new { base64 = Image } });
        var problem = await Problems.AssertAsync(refused, HttpStatusCode.ServiceUnavailable, "model_unavailable");
        Assert.Equal(
            $"{Name}@2 failed on every recent batch and is marked unavailable until {retryAt:yyyy-MM-ddTHH:mm:ssZ}; "
            + "no job was created. Retry later, or submit to another version (GET /v1/models shows which are available).",
            problem.GetProperty("detail").GetString());
        Assert.InRange(refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 300, 600); // from routing's RetryAt, not the floor of 1 s
        Assert.Equal(2, availability.Reads); // the chosen version, then the other: none by the intake

        // A pinned submit is not routed: the intake reads the (closed) breaker itself, and the job is made.
        Assert.Equal($"{Name}@2", await RoutedAsync(client, $"{Name}@2"));
        Assert.Equal(2, availability.Reads);
    }

    [Fact]
    public async Task A_version_whose_circuit_breaker_opened_is_skipped_by_routing_and_refused_when_pinned()
    {
        await using var api = CreateApi(new Dictionary<string, string?> { ["Serving:ModelBreaker:FailureThreshold"] = "2" });
        using var client = serving.Client(api);
        var breakers = api.Services.GetRequiredService<Async.Serving.Breakers.ModelBreakers>();
        Assert.Same(breakers, api.Services.GetRequiredService<IModelAvailability>());
        await SetWeightsAsync(client, new Dictionary<string, int> { ["1"] = 10, ["2"] = 90 });
        var canary = $"{Name}@2";
        try
        {
            // Two batches in which the model gave nothing, as a worker reports them (in the background): the breaker opens.
            breakers.ReportBatch(canary, "OnnxRuntimeException: test");
            breakers.ReportBatch(canary, "OnnxRuntimeException: test");
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (!await breakers.IsOpenAsync(canary, CancellationToken.None) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }

            Assert.True(await breakers.IsOpenAsync(canary, CancellationToken.None));
            foreach (var key in KeysBetween(10, 100, 5))
            {
                Assert.Equal($"{Name}@1", await RoutedAsync(client, Name, key));
            }

            var pinned = await client.PostAsJsonAsync("/v1/jobs", new { pipeline = "image.embed", model = canary, input = new { base64 = Image } });
            await Problems.AssertAsync(pinned, HttpStatusCode.ServiceUnavailable, "model_unavailable");
        }
        finally
        {
            await breakers.CloseAsync(canary, CancellationToken.None);
        }

        Assert.Equal(canary, await RoutedAsync(client, Name, KeysBetween(10, 100, 1)[0]));
    }

    [Fact]
    public async Task Usage_compares_the_versions_that_ran_with_failure_rate_and_percentiles()
    {
        var key = "sk_test_" + Guid.NewGuid().ToString("N");
        await using var api = CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Auth:DevelopmentKey"] = key,
            ["Serving:Auth:DevelopmentTenant"] = "routing-usage-" + Guid.NewGuid().ToString("N")[..8],
        });
        using var client = serving.Client(api, key);
        await SetWeightsAsync(client, new Dictionary<string, int> { ["1"] = 50, ["2"] = 50 });
        var keys = KeysBetween(0, 50, 3).Concat(KeysBetween(50, 100, 3)).ToList();
        var jobs = new List<JsonElement>();
        foreach (var k in keys)
        {
            jobs.Add(await SubmitAsync(client, Name, k));
        }

        foreach (var job in jobs)
        {
            var done = await ServingFixture.WaitForTerminalAsync(client, job.GetProperty("id").GetString()!);
            Assert.Equal("succeeded", done.GetProperty("status").GetString());
            Assert.Equal(job.GetProperty("model").GetString(), done.GetProperty("model").GetString());
            await LedgerTests.WaitForRowAsync(api, job.GetProperty("id").GetString()!, "succeeded");
        }

        var usage = await client.GetFromJsonAsync<JsonElement>($"/v1/usage?model={Name}");
        var lines = usage.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal([$"{Name}@1", $"{Name}@2"], lines.Select(l => l.GetProperty("model").GetString()));
        foreach (var line in lines)
        {
            Assert.Equal(3, line.GetProperty("jobs").GetInt64());
            Assert.Equal(0.0, line.GetProperty("failure_rate").GetDouble());
            var execution = line.GetProperty("execution_ms");
            Assert.True(execution.GetProperty("p50").GetDouble() <= execution.GetProperty("p95").GetDouble());
            Assert.True(execution.GetProperty("p95").GetDouble() <= execution.GetProperty("p99").GetDouble());
            var latency = line.GetProperty("latency_ms");
            Assert.True(latency.GetProperty("p50").GetDouble() >= execution.GetProperty("p50").GetDouble());
        }

        var one = await client.GetFromJsonAsync<JsonElement>($"/v1/usage?model={Name}@2");
        Assert.Equal($"{Name}@2", Assert.Single(one.GetProperty("data").EnumerateArray()).GetProperty("model").GetString());
    }

    [Fact]
    public async Task The_dashboard_lists_the_weights_and_its_rollback_button_routes_the_next_submit()
    {
        using var client = serving.Client(_api);
        await SetWeightsAsync(client, new Dictionary<string, int> { ["1"] = 30, ["2"] = 70 });
        using var dashboard = await DashboardTests.SignInAsync(_api, serving.DashboardPassword);
        var page = await dashboard.GetStringAsync("/hangfire/routing");
        Assert.Contains($"id=\"routing-{Name}\"", page, StringComparison.Ordinal);
        Assert.Contains("70 (70 %)", page, StringComparison.Ordinal);
        Assert.Contains("Rollback to 1", page, StringComparison.Ordinal);

        var rolledBack = await DashboardManagementTests.SubmitAsync(dashboard, "/hangfire/routing", "/hangfire/routing/set", ("model", Name), ("weight-1", "100"));
        Assert.Contains("1: 100 %", DashboardManagementTests.Outcome(rolledBack), StringComparison.Ordinal);
        Assert.Equal($"{Name}@1", await RoutedAsync(client, Name, KeysBetween(30, 100, 1)[0]));
        var table = await client.GetFromJsonAsync<JsonElement>($"/v1/models/{Name}/routing");
        Assert.Equal("dashboard", table.GetProperty("updated_by").GetString());

        var set = await DashboardManagementTests.SubmitAsync(dashboard, "/hangfire/routing", "/hangfire/routing/set", ("model", Name), ("weight-1", "80"), ("weight-2", "20"));
        Assert.Contains("2: 20 %", DashboardManagementTests.Outcome(set), StringComparison.Ordinal);
        var refused = await DashboardManagementTests.SubmitAsync(dashboard, "/hangfire/routing", "/hangfire/routing/set", ("model", Name), ("weight-9", "100"));
        Assert.StartsWith("Not changed", DashboardManagementTests.Outcome(refused), StringComparison.Ordinal);
        Assert.Equal(20, (await client.GetFromJsonAsync<JsonElement>($"/v1/models/{Name}/routing")).GetProperty("weights").GetProperty("2").GetInt32());
    }

    /// <summary>Says the versions named are unavailable until <paramref name="retryAt"/>, any other available, and counts the reads.</summary>
    private sealed class Unavailable(DateTimeOffset retryAt, params string[] modelIds) : IModelAvailability
    {
        private int _reads;

        public int Reads => Volatile.Read(ref _reads);

        public Task<ModelAvailability> CheckAsync(string modelId, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _reads);
            return Task.FromResult(modelIds.Contains(modelId) ? new ModelAvailability(false, BreakerState.Open, retryAt) : ModelAvailability.Closed);
        }
    }
}
