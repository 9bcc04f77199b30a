using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Hosting;

namespace Async.Serving.IntegrationTests;

/// <summary>Long-poll, events, cancel, expiry, idempotency, listing, queue limits and tenant isolation.</summary>
[Collection(ServingCollection.Name)]
public sealed class JobControlTests(ServingFixture serving)
{
    private static object Body(string model, int seed, int? ttl = null) => new
    {
        pipeline = "image.embed",
        model,
        input = new { base64 = Convert.ToBase64String(TestImages.Scene(seed, 320, 240)) },
        ttl_seconds = ttl,
    };

    private static async Task<JsonElement> JsonAsync(HttpResponseMessage response) =>
        await response.Content.ReadFromJsonAsync<JsonElement>();

    private static async Task<string> SubmitAsync(HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs", body);
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        return (await JsonAsync(response)).GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement> GetAsync(HttpClient client, string id) =>
        await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");

    private static string Status(JsonElement job) => job.GetProperty("status").GetString()!;

    private static async Task<IHost> StartWorkerAsync(PrivateModels models)
    {
        var worker = ServingFixture.BuildWorker(models.Path);
        await worker.StartAsync();
        return worker;
    }

    private static async Task StopAsync(IHost worker)
    {
        await worker.StopAsync(TimeSpan.FromSeconds(30));
        worker.Dispose();
    }

    [Fact]
    public async Task Wait_on_submit_and_on_get_returns_the_finished_job()
    {
        using var client = serving.Client();
        var response = await client.PostAsJsonAsync("/v1/jobs?wait=30", Body("resnet18", 40));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var job = await JsonAsync(response);
        Assert.Equal("succeeded", Status(job));
        Assert.Equal(512, job.GetProperty("output").GetProperty("dims").GetInt32());

        var id = await SubmitAsync(client, Body("resnet18", 41));
        var waited = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}?wait=30");
        Assert.Equal("succeeded", Status(waited));

        var tooLong = await client.GetAsync($"/v1/jobs/{id}?wait=61");
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
    }

    [Fact]
    public async Task Wait_returns_202_with_the_job_as_it_stands_when_time_runs_out()
    {
        using var models = new PrivateModels(); // no worker serves it: the job stays queued
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path });
        using var client = serving.Client(api);

        var started = DateTime.UtcNow;
        var response = await client.PostAsJsonAsync("/v1/jobs?wait=1", Body(models.Name, 42));
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        Assert.Equal("queued", Status(await JsonAsync(response)));
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromSeconds(0.9), "the request waited");
    }

    [Fact]
    public async Task Events_stream_status_then_completed_and_end()
    {
        // A lone job waits 1.5 s for batch-mates, so the stream surely opens before it finishes.
        using var models = new PrivateModels(c => c["max_queue_delay_ms"] = 1500);
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path });
        using var client = serving.Client(api);
        var worker = await StartWorkerAsync(models);
        try
        {
            await AssertEventsAsync(client, await SubmitAsync(client, Body(models.Name, 43)));
        }
        finally
        {
            await StopAsync(worker);
        }
    }

    private static async Task AssertEventsAsync(HttpClient client, string id)
    {
        using var response = await client.GetAsync($"/v1/jobs/{id}/events", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<(string Type, JsonElement Job)>();
        string? type = null;
        using var timeout = new CancellationTokenSource(ServingFixture.JobWait);
        while (await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                type = line["event: ".Length..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add((type!, JsonDocument.Parse(line["data: ".Length..]).RootElement));
            }
        }

        Assert.Equal("status", events[0].Type);
        Assert.Equal("completed", events[^1].Type);
        Assert.Equal("succeeded", Status(events[^1].Job));
        Assert.Equal(id, events[^1].Job.GetProperty("id").GetString());
    }

    [Fact]
    public async Task A_cancelled_queued_job_never_runs_and_a_second_cancel_is_409()
    {
        using var models = new PrivateModels();
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path });
        using var client = serving.Client(api);
        var id = await SubmitAsync(client, Body(models.Name, 44));

        var cancel = await client.PostAsync($"/v1/jobs/{id}/cancel", null);
        await Problems.AssertStatusAsync(cancel, HttpStatusCode.Accepted);
        Assert.Equal("cancelled", Status(await JsonAsync(cancel)));

        var worker = await StartWorkerAsync(models);
        try
        {
            // A canary behind it in the same queue: once it finished, the cancelled job's message was consumed too.
            var canary = await SubmitAsync(client, Body(models.Name, 45));
            Assert.Equal("succeeded", Status(await ServingFixture.WaitForTerminalAsync(client, canary)));
        }
        finally
        {
            await StopAsync(worker);
        }

        var job = await GetAsync(client, id);
        Assert.Equal("cancelled", Status(job));
        Assert.Equal(0, job.GetProperty("attempts").GetInt32());
        Assert.Equal(JsonValueKind.Null, job.GetProperty("started_at").ValueKind);

        var again = await client.PostAsync($"/v1/jobs/{id}/cancel", null);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        Assert.Equal("conflict", (await JsonAsync(again)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task A_running_job_is_stopped_by_its_worker_on_cancel()
    {
        // A batch that waits 20 s for batch-mates keeps a lone job running long enough to cancel it.
        using var models = new PrivateModels(c => c["max_queue_delay_ms"] = 10_000);
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path });
        using var client = serving.Client(api);
        var worker = await StartWorkerAsync(models);
        try
        {
            var id = await SubmitAsync(client, Body(models.Name, 46));
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(8);
            while (Status(await GetAsync(client, id)) != "running")
            {
                Assert.True(DateTime.UtcNow < deadline, "the job never started");
                await Task.Delay(20);
            }

            var cancelledAt = DateTime.UtcNow;
            var cancel = await client.PostAsync($"/v1/jobs/{id}/cancel", null);
            await Problems.AssertStatusAsync(cancel, HttpStatusCode.Accepted);

            var job = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}?wait=8");
            Assert.Equal("cancelled", Status(job));
            Assert.True(DateTime.UtcNow - cancelledAt < TimeSpan.FromSeconds(8), "the worker stopped the job before its batch left");
            Assert.Equal(JsonValueKind.Null, job.GetProperty("output").ValueKind);
        }
        finally
        {
            await StopAsync(worker);
        }
    }

    [Fact]
    public async Task A_job_queued_past_its_ttl_expires_and_never_runs()
    {
        using var models = new PrivateModels();
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path });
        using var client = serving.Client(api);
        var id = await SubmitAsync(client, Body(models.Name, 47, ttl: 1));
        await Task.Delay(1500);

        var worker = await StartWorkerAsync(models);
        try
        {
            var job = await ServingFixture.WaitForTerminalAsync(client, id);
            Assert.Equal("expired", Status(job));
            Assert.Equal(0, job.GetProperty("attempts").GetInt32());
            Assert.Equal(JsonValueKind.Null, job.GetProperty("started_at").ValueKind);
        }
        finally
        {
            await StopAsync(worker);
        }
    }

    [Fact]
    public async Task Idempotency_keys_replay_the_first_job_and_refuse_another_body()
    {
        using var models = new PrivateModels();
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path });
        using var client = serving.Client(api);
        var key = "order-" + Guid.NewGuid();

        async Task<HttpResponseMessage> Post(object body)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = JsonContent.Create(body) };
            request.Headers.Add("Idempotency-Key", key);
            return await client.SendAsync(request);
        }

        // Concurrent duplicates make one job.
        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Post(Body(models.Name, 48))));
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Accepted, r.StatusCode));
        var ids = await Task.WhenAll(responses.Select(async r => (await JsonAsync(r)).GetProperty("id").GetString()));
        Assert.Single(ids.Distinct());
        Assert.Equal(7, responses.Count(r => r.Headers.TryGetValues("Idempotent-Replayed", out var v) && v.Single() == "true"));

        var mismatch = await Post(Body(models.Name, 49));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, mismatch.StatusCode);
        Assert.Equal("idempotency_mismatch", (await JsonAsync(mismatch)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task A_full_queue_answers_503_queue_full_with_retry_after()
    {
        using var models = new PrivateModels();
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Models:Path"] = models.Path,
            ["Serving:Queues:MaxDepth"] = "2",
            ["Serving:Queues:DepthCacheTime"] = "00:00:00",
        });
        using var client = serving.Client(api);
        await SubmitAsync(client, Body(models.Name, 50));
        await SubmitAsync(client, Body(models.Name, 51));

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        HttpResponseMessage response;
        do
        {
            // The broker counts a message as ready a moment after it confirmed it.
            response = await client.PostAsJsonAsync("/v1/jobs", Body(models.Name, 52));
        }
        while (response.StatusCode == HttpStatusCode.Accepted && DateTime.UtcNow < deadline && await Task.Delay(100).ContinueWith(_ => true));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("queue_full", (await JsonAsync(response)).GetProperty("code").GetString());
        Assert.NotNull(response.Headers.RetryAfter);
    }

    [Fact]
    public async Task A_full_queue_counts_jobs_not_broker_messages()
    {
        const int maxDepth = 16;
        using var models = new PrivateModels(); // no worker serves it: every job stays queued
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Models:Path"] = models.Path,
            ["Serving:Queues:MaxDepth"] = maxDepth.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Serving:Queues:DepthCacheTime"] = "00:00:00",
        });
        using var client = serving.Client(api);
        using var management = ServingFixture.ManagementClient(api);

        // Submitted at once, they share broker messages (up to 8 in one): fewer messages than jobs wait.
        var bodies = Enumerable.Range(0, maxDepth).Select(n => Body(models.Name, 200 + n)).ToList(); // made first: the submits go out together
        await Task.WhenAll(bodies.Select(body => SubmitAsync(client, body)));
        var metrics = await management.GetStringAsync("/metrics");
        var messages = System.Text.RegularExpressions.Regex.Match(metrics, $$"""serving_api_job_messages_total\{model="{{models.Name}}@1"\} (\S+)""");
        Assert.True(messages.Success, "no message count for the model");
        Assert.InRange(double.Parse(messages.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), 2, maxDepth - 1);

        // The queue holds maxDepth jobs, in fewer messages: the next submit is refused at once.
        var response = await client.PostAsJsonAsync("/v1/jobs", Body(models.Name, 299));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("queue_full", (await JsonAsync(response)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task The_job_list_is_newest_first_filtered_and_paged()
    {
        var tenant = "list-" + Guid.NewGuid().ToString("N")[..8];
        var key = "sk_test_list_" + Guid.NewGuid().ToString("N");
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Auth:DevelopmentKey"] = key,
            ["Serving:Auth:DevelopmentTenant"] = tenant,
        });
        using var client = serving.Client(api, key);
        var ids = new List<string>();
        foreach (var seed in new[] { 53, 54, 55 })
        {
            ids.Add(await SubmitAsync(client, Body("resnet18", seed)));
        }

        foreach (var id in ids)
        {
            await ServingFixture.WaitForTerminalAsync(client, id);
        }

        var seen = new List<string>();
        string? cursor = null;
        do
        {
            var page = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs?limit=2{(cursor is null ? string.Empty : "&cursor=" + cursor)}");
            seen.AddRange(page.GetProperty("data").EnumerateArray().Select(j => j.GetProperty("id").GetString()!));
            cursor = page.GetProperty("next_cursor").GetString();
        }
        while (cursor is not null && seen.Count < 10);

        Assert.Equal(Enumerable.Reverse(ids), seen);
        var succeeded = await client.GetFromJsonAsync<JsonElement>("/v1/jobs?status=succeeded&pipeline=image.embed");
        Assert.Equal(3, succeeded.GetProperty("data").GetArrayLength());
        var none = await client.GetFromJsonAsync<JsonElement>("/v1/jobs?status=failed");
        Assert.Equal(0, none.GetProperty("data").GetArrayLength());
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync("/v1/jobs?status=nope")).StatusCode);
    }

    [Fact]
    public async Task Another_tenant_gets_404_on_every_route_of_a_job()
    {
        using var owner = serving.Client();
        var id = await SubmitAsync(owner, Body("resnet18", 56));

        var key = "sk_test_other_" + Guid.NewGuid().ToString("N");
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Auth:DevelopmentKey"] = key,
            ["Serving:Auth:DevelopmentTenant"] = "other-" + Guid.NewGuid().ToString("N")[..8],
        });
        using var stranger = serving.Client(api, key);

        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/v1/jobs/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/v1/jobs/{id}?wait=1")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/v1/jobs/{id}/events")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.PostAsync($"/v1/jobs/{id}/cancel", null)).StatusCode);
        var list = await stranger.GetFromJsonAsync<JsonElement>("/v1/jobs");
        Assert.DoesNotContain(list.GetProperty("data").EnumerateArray(), j => j.GetProperty("id").GetString() == id);
        Assert.Equal("succeeded", Status(await ServingFixture.WaitForTerminalAsync(owner, id)));
    }

    [Fact]
    public async Task After_the_result_retention_a_job_keeps_its_status_without_output()
    {
        using var models = new PrivateModels();
        var overrides = new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path, ["Serving:Results:Retention"] = "00:00:02" };
        await using var api = serving.CreateApi(overrides);
        using var client = serving.Client(api);
        var worker = ServingFixture.BuildWorker(models.Path, new Dictionary<string, string?> { ["Serving:Results:Retention"] = "00:00:02" });
        await worker.StartAsync();
        try
        {
            var response = await client.PostAsJsonAsync("/v1/jobs?wait=30", Body(models.Name, 57));
            var job = await JsonAsync(response);
            Assert.Equal("succeeded", Status(job));
            Assert.Equal(JsonValueKind.Object, job.GetProperty("output").ValueKind);
            var expiresAt = job.GetProperty("result_expires_at").GetDateTimeOffset();
            Assert.InRange((expiresAt - job.GetProperty("completed_at").GetDateTimeOffset()).TotalSeconds, 1.9, 2.1);

            await Task.Delay(TimeSpan.FromSeconds(2.5));
            var later = await GetAsync(client, job.GetProperty("id").GetString()!);
            Assert.Equal("succeeded", Status(later));
            Assert.Equal(JsonValueKind.Null, later.GetProperty("output").ValueKind);
            Assert.Equal(expiresAt, later.GetProperty("result_expires_at").GetDateTimeOffset());
        }
        finally
        {
            await StopAsync(worker);
        }
    }

    [Fact]
    public async Task A_job_running_past_its_timeout_fails_with_timeout()
    {
        // The lone job waits 10 s for batch-mates: longer than its 1 s timeout.
        using var models = new PrivateModels(c => c["max_queue_delay_ms"] = 10_000);
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path });
        using var client = serving.Client(api);
        var worker = await StartWorkerAsync(models);
        try
        {
            var response = await client.PostAsJsonAsync("/v1/jobs?wait=8", new
            {
                pipeline = "image.embed",
                model = models.Name,
                input = new { base64 = Convert.ToBase64String(TestImages.Scene(58, 320, 240)) },
                timeout_seconds = 1,
            });
            var job = await JsonAsync(response);
            Assert.Equal("failed", Status(job));
            Assert.Equal("timeout", job.GetProperty("error").GetProperty("code").GetString());
        }
        finally
        {
            await StopAsync(worker);
        }
    }
}
