using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Async.Serving.Contracts;
using Async.Serving.Jobs;
using Async.Serving.Messaging;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Async.Serving.IntegrationTests;

[Collection(ServingCollection.Name)]
public sealed class JobsApiTests(ServingFixture serving, ITestOutputHelper output)
{
    /// <summary>The 503 codes that say a dependency did not answer in time, which the contract tells a client to retry after <c>Retry-After</c>.</summary>
    private static readonly string[] Transient = ["broker_unavailable", "store_unavailable"];
    private static MultipartFormDataContent Multipart(byte[] file, string request, string contentType = "image/jpeg")
    {
        var content = new MultipartFormDataContent();
        var part = new ByteArrayContent(file);
        part.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        content.Add(part, "file", "image.jpg");
        content.Add(new StringContent(request), "request");
        return content;
    }

    /// <summary>
    /// Submits an image and returns its job's id. Like a client that follows the contract, it retries
    /// a transient 503 (<see cref="Transient"/>) after its <c>Retry-After</c>, at most twice, and says so
    /// in the test's output: in CI, with 24 submits at once on 2 shared cores, one such 503 came back.
    /// Any other answer fails the test with the problem it carried.
    /// </summary>
    private async Task<string> SubmitAsync(HttpClient client, byte[] image)
    {
        for (var attempt = 1; ; attempt++)
        {
            var response = await client.PostAsync("/v1/jobs", Multipart(image, """{"pipeline":"image.embed","model":"resnet18"}"""));
            if (response.StatusCode == HttpStatusCode.ServiceUnavailable && attempt < 3)
            {
                var problem = await response.Content.ReadAsStringAsync();
                Assert.Contains(JsonDocument.Parse(problem).RootElement.GetProperty("code").GetString(), Transient);
                var wait = response.Headers.RetryAfter?.Delta;
                Assert.NotNull(wait);
                output.WriteLine($"submit attempt {attempt} answered 503, retried after {wait.Value.TotalSeconds:0} s: {problem}");
                await Task.Delay(wait.Value);
                continue;
            }

            await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
            var job = await response.Content.ReadFromJsonAsync<JsonElement>();
            return job.GetProperty("id").GetString()!;
        }
    }

    private static float[] Embedding(JsonElement job) =>
        [.. job.GetProperty("output").GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle())];

    private static double Cosine(float[] a, float[] b) => a.Zip(b, (x, y) => (double)x * y).Sum();

    [Fact]
    public async Task A_multipart_image_is_queued_then_embedded_as_a_unit_vector()
    {
        using var client = serving.Client();
        var response = await client.PostAsync("/v1/jobs", Multipart(TestImages.Scene(1), """{"pipeline":"image.embed","model":"resnet18@1","metadata":{"k":"v"}}"""));

        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        var ticket = await response.Content.ReadFromJsonAsync<JsonElement>();
        var id = ticket.GetProperty("id").GetString()!;
        Assert.Equal($"/v1/jobs/{id}", response.Headers.Location?.ToString());
        Assert.Equal("queued", ticket.GetProperty("status").GetString());

        var job = await ServingFixture.WaitForTerminalAsync(client, id);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal("resnet18@1", job.GetProperty("model").GetString());
        Assert.Equal("v", job.GetProperty("metadata").GetProperty("k").GetString());
        Assert.Equal(1, job.GetProperty("attempts").GetInt32());
        Assert.True(job.GetProperty("queue_ms").GetInt64() >= 0);
        Assert.True(job.GetProperty("execution_ms").GetInt64() >= 0);
        Assert.EndsWith("Z", job.GetProperty("completed_at").GetString(), StringComparison.Ordinal);
        Assert.Equal(512, job.GetProperty("output").GetProperty("dims").GetInt32());
        var embedding = Embedding(job);
        Assert.Equal(512, embedding.Length);
        Assert.Equal(1.0, Math.Sqrt(embedding.Sum(v => (double)v * v)), 3);
        Assert.Contains(embedding, v => v != 0);
    }

    [Fact]
    public async Task A_base64_json_input_is_accepted()
    {
        using var client = serving.Client();
        var response = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "image.embed",
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(2)) },
        });
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

        var job = await ServingFixture.WaitForTerminalAsync(client, id);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal(512, Embedding(job).Length);
    }

    [Fact]
    public async Task A_corrupt_image_fails_alone_while_the_jobs_submitted_with_it_succeed()
    {
        using var client = serving.Client();
        var images = Enumerable.Range(10, 7).Select(seed => TestImages.Scene(seed)).ToList();
        images.Insert(3, TestImages.TruncatedJpeg());

        var ids = await Task.WhenAll(images.Select(image => SubmitAsync(client, image)));
        var jobs = await Task.WhenAll(ids.Select(id => ServingFixture.WaitForTerminalAsync(client, id)));

        var corrupt = jobs[3];
        Assert.Equal("failed", corrupt.GetProperty("status").GetString());
        Assert.Equal("input_invalid", corrupt.GetProperty("error").GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(corrupt.GetProperty("error").GetProperty("message").GetString()));
        Assert.Equal(JsonValueKind.Null, corrupt.GetProperty("output").ValueKind);
        Assert.All(jobs.Where((_, i) => i != 3), job => Assert.Equal("succeeded", job.GetProperty("status").GetString()));
    }

    [Fact]
    public async Task Near_duplicate_photos_embed_closer_than_unrelated_ones()
    {
        using var client = serving.Client();
        int[] seeds = [21, 22, 23, 24];
        var originals = seeds.Select(s => TestImages.Scene(s)).ToList();
        var duplicates = seeds.Select(s => TestImages.Scene(s, 800, 600, crop: 0.05f, brightness: 1.12f, quality: 55)).ToList();

        var ids = await Task.WhenAll(originals.Concat(duplicates).Select(image => SubmitAsync(client, image)));
        var embeddings = (await Task.WhenAll(ids.Select(id => ServingFixture.WaitForTerminalAsync(client, id)))).Select(Embedding).ToArray();

        for (var i = 0; i < seeds.Length; i++)
        {
            var duplicate = Cosine(embeddings[i], embeddings[seeds.Length + i]);
            for (var j = 0; j < seeds.Length; j++)
            {
                if (j != i)
                {
                    var unrelated = Cosine(embeddings[i], embeddings[j]);
                    Assert.True(duplicate > unrelated, $"scene {seeds[i]}: near-duplicate {duplicate:F3} vs unrelated scene {seeds[j]} {unrelated:F3}");
                }
            }
        }
    }

    [Fact]
    public async Task A_redelivered_job_that_already_finished_is_not_run_again()
    {
        using var client = serving.Client();
        var id = await SubmitAsync(client, TestImages.Scene(30));
        var first = await ServingFixture.WaitForTerminalAsync(client, id);
        Assert.Equal("succeeded", first.GetProperty("status").GetString());

        // The same message again, as RabbitMQ would redeliver it after a lost ack.
        var send = await serving.Api.Services.GetRequiredService<ISendEndpointProvider>().GetSendEndpoint(JobQueues.SendAddress("infer-resnet18-1"));
        await send.Send(new RunInference
        {
            JobId = id,
            TenantId = serving.Tenant,
            Pipeline = "image.embed",
            Model = "resnet18",
            ModelVersion = "1",
            InputKey = RedisJobStore.InputKey(id).ToString(),
            SubmittedAt = DateTimeOffset.UtcNow,
        });
        // A canary submitted after the duplicate finishing means the duplicate was consumed too.
        var canary = await SubmitAsync(client, TestImages.Scene(31));
        await ServingFixture.WaitForTerminalAsync(client, canary);
        await Task.Delay(500);

        var again = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
        Assert.Equal("succeeded", again.GetProperty("status").GetString());
        Assert.Equal(1, again.GetProperty("attempts").GetInt32());
        Assert.Equal(first.GetProperty("completed_at").GetString(), again.GetProperty("completed_at").GetString());
    }

    private static double JobMessagesSent(string metrics) =>
        System.Text.RegularExpressions.Regex.Matches(metrics, """^serving_api_job_messages_total\{model="resnet18@1"\} (\S+)$""", System.Text.RegularExpressions.RegexOptions.Multiline)
            .Sum(m => double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));

    [Fact]
    public async Task Concurrent_submits_to_a_model_share_broker_messages_and_each_job_runs_once()
    {
        using var client = serving.Client();
        using var management = ServingFixture.ManagementClient(serving.Api);
        var before = JobMessagesSent(await management.GetStringAsync("/metrics"));

        const int jobs = 24;
        // The images are made first, so the submits go out together rather than one per image encoded.
        var images = Enumerable.Range(0, jobs).Select(n => TestImages.Scene(60 + n)).ToList();
        var ids = await Task.WhenAll(images.Select(image => SubmitAsync(client, image)));
        var sent = JobMessagesSent(await management.GetStringAsync("/metrics")) - before;

        // resnet18's batches hold 8: submits that waited behind a send to its queue went up to 8 in one message.
        Assert.InRange(sent, Math.Ceiling(jobs / 8.0), jobs - 1);
        foreach (var id in ids)
        {
            var job = await ServingFixture.WaitForTerminalAsync(client, id);
            Assert.Equal("succeeded", job.GetProperty("status").GetString());
            Assert.Equal(1, job.GetProperty("attempts").GetInt32());
            Assert.Equal(512, job.GetProperty("output").GetProperty("dims").GetInt32());
        }
    }

    [Fact]
    public async Task A_message_of_several_jobs_ends_each_on_its_own_and_a_bad_input_fails_alone()
    {
        using var client = serving.Client();
        var store = serving.Api.Services.GetRequiredService<RedisJobStore>();
        var model = serving.Api.Services.GetRequiredService<Async.Serving.Models.ModelRepository>().Resolve("resnet18@1")!;

        // A job that already succeeded: its redelivered copy in the batch changes nothing.
        var done = await SubmitAsync(client, TestImages.Scene(90));
        var doneBefore = await ServingFixture.WaitForTerminalAsync(client, done);
        var alone = Embedding(doneBefore);

        async Task<string> StoreAsync(byte[] input)
        {
            var job = new JobRecord
            {
                Id = RedisJobStore.NewJobId(), TenantId = serving.Tenant, Status = JobStatuses.Queued, Pipeline = "image.embed", Model = "resnet18@1",
                CreatedAt = DateTimeOffset.UtcNow,
            };
            await store.CreateAsync(job, input);
            return job.Id;
        }

        var same = await StoreAsync(TestImages.Scene(90));
        var bad = await StoreAsync("not an image at all"u8.ToArray());
        var other = await StoreAsync(TestImages.Scene(91));
        RunInference Message(string id) => new()
        {
            JobId = id, TenantId = serving.Tenant, Pipeline = "image.embed", Model = "resnet18", ModelVersion = "1",
            InputKey = RedisJobStore.InputKey(id).ToString(), SubmittedAt = DateTimeOffset.UtcNow, TimeoutSeconds = 60,
        };
        var sender = serving.Api.Services.GetRequiredService<Async.Serving.Api.Jobs.JobSender>();
        await sender.SendAsync(new RunInferenceBatch { Jobs = [Message(same), Message(bad), Message(done), Message(other)] }, model.LaneQueue(JobPriorities.Normal));

        var sameEnded = await ServingFixture.WaitForTerminalAsync(client, same);
        Assert.Equal("succeeded", sameEnded.GetProperty("status").GetString());
        Assert.True(Cosine(alone, Embedding(sameEnded)) > 0.9999, "the same image in a batch message embeds as it did alone");
        Assert.Equal("succeeded", (await ServingFixture.WaitForTerminalAsync(client, other)).GetProperty("status").GetString());
        var badEnded = await ServingFixture.WaitForTerminalAsync(client, bad);
        Assert.Equal("failed", badEnded.GetProperty("status").GetString());
        Assert.Equal("input_invalid", badEnded.GetProperty("error").GetProperty("code").GetString());

        var doneAfter = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{done}");
        Assert.Equal(1, doneAfter.GetProperty("attempts").GetInt32());
        Assert.Equal(doneBefore.GetProperty("completed_at").GetString(), doneAfter.GetProperty("completed_at").GetString());
    }

    [Fact]
    public async Task Requests_without_a_valid_key_get_401_problem_details()
    {
        using var anonymous = serving.Api.CreateClient();
        await Problems.AssertAsync(await anonymous.GetAsync("/v1/jobs/abc"), HttpStatusCode.Unauthorized, "unauthorized");

        using var wrong = serving.Client(key: "sk_wrong");
        await Problems.AssertAsync(await wrong.PostAsync("/v1/jobs", Multipart(TestImages.Scene(1), """{"pipeline":"image.embed"}""")),
            HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task An_unknown_job_is_404_problem_details()
    {
        using var client = serving.Client();
        await Problems.AssertAsync(await client.GetAsync("/v1/jobs/0000000000000000000000000000dead"), HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task Bad_submissions_get_the_contract_codes()
    {
        using var client = serving.Client();
        var image = TestImages.Scene(3);

        await Problems.AssertAsync(await client.PostAsync("/v1/jobs", Multipart(image, """{"pipeline":"image.nope"}""")),
            HttpStatusCode.UnprocessableEntity, "unknown_pipeline");
        await Problems.AssertAsync(await client.PostAsync("/v1/jobs", Multipart(image, """{"pipeline":"image.embed","model":"resnet18@9"}""")),
            HttpStatusCode.UnprocessableEntity, "unknown_model");
        var pdf = await Problems.AssertAsync(await client.PostAsync("/v1/jobs", Multipart("%PDF-1.7 not an image"u8.ToArray(), """{"pipeline":"image.embed"}""")),
            HttpStatusCode.UnprocessableEntity, "input_invalid");
        Assert.EndsWith("image; they are a PDF document.", pdf.GetProperty("detail").GetString(), StringComparison.Ordinal);
        var video = await Problems.AssertAsync(await client.PostAsync("/v1/jobs", Multipart(image, """{"pipeline":"video.analyze"}""", "application/octet-stream")),
            HttpStatusCode.UnprocessableEntity, "input_invalid");
        Assert.EndsWith("they are a JPEG image: submit it to image.embed or image.ocr.", video.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await Problems.AssertAsync(await client.PostAsync("/v1/jobs", Multipart(image, """{"pipeline":"image.embed"}""", "text/plain")),
            HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
        await Problems.AssertAsync(await client.PostAsJsonAsync("/v1/jobs", new { pipeline = "image.embed", input = new { base64 = "%%%" } }),
            HttpStatusCode.BadRequest, "input_invalid");
        await Problems.AssertAsync(await client.PostAsJsonAsync("/v1/jobs", new { input = new { base64 = Convert.ToBase64String(image) } }),
            HttpStatusCode.BadRequest, "input_invalid");
        await Problems.AssertAsync(await client.PostAsync("/v1/jobs", new StringContent("{ not json", System.Text.Encoding.UTF8, "application/json")),
            HttpStatusCode.BadRequest, "input_invalid");
        await Problems.AssertAsync(await client.PostAsync("/v1/jobs", new StringContent("hello", System.Text.Encoding.UTF8, "text/plain")),
            HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
    }

    [Fact]
    public async Task Without_a_broker_confirm_there_is_no_ticket_and_no_orphan_job()
    {
        var tenant = "nobroker-" + Guid.NewGuid().ToString("N")[..8];
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:RabbitMq:Port"] = "1", // nothing listens there
            ["Serving:Limits:PublishTimeout"] = "00:00:01",
            ["Serving:Auth:DevelopmentTenant"] = tenant,
        });
        using var client = serving.Client(api);

        var response = await client.PostAsync("/v1/jobs", Multipart(TestImages.Scene(4), """{"pipeline":"image.embed"}"""));

        await Problems.AssertAsync(response, HttpStatusCode.ServiceUnavailable, "broker_unavailable");
        Assert.NotNull(response.Headers.RetryAfter);
        var redis = serving.Api.Services.GetRequiredService<IConnectionMultiplexer>();
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        await foreach (var key in server.KeysAsync(pattern: "*:job:*"))
        {
            Assert.NotEqual(tenant, (string?)await redis.GetDatabase().HashGetAsync(key, "tenant"));
        }
    }

    [Fact]
    public async Task Readiness_reports_broker_redis_and_postgres()
    {
        using var client = serving.Api.CreateClient();
        var response = await client.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var report = await response.Content.ReadFromJsonAsync<JsonElement>();
        var checks = report.GetProperty("checks");
        Assert.Equal("healthy", checks.GetProperty("redis").GetProperty("status").GetString());
        Assert.Equal("healthy", checks.GetProperty("postgres").GetProperty("status").GetString());
        Assert.Equal("healthy", checks.GetProperty("masstransit-bus").GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
    }

    [Fact]
    public async Task The_worker_is_warm_before_it_consumes()
    {
        var model = Assert.Single(serving.Models.Served, m => m.Entry.Id == "resnet18@1");
        Assert.True(serving.Models.IsReady);
        Assert.Contains(model.Provider, new[] { "cpu", "cuda" });
        using var client = serving.Client();
        var id = await SubmitAsync(client, TestImages.Scene(5));
        Assert.Equal("succeeded", (await ServingFixture.WaitForTerminalAsync(client, id)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Models_lists_versions_batching_and_live_workers()
    {
        using var client = serving.Client();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        JsonElement resnet, video, ocr;
        do
        {
            var list = await client.GetFromJsonAsync<JsonElement>("/v1/models");
            JsonElement Find(string id) => list.GetProperty("data").EnumerateArray().Single(m => m.GetProperty("id").GetString() == id);
            (resnet, video, ocr) = (Find("resnet18@1"), Find("video@1"), Find("ppocr@4"));
        }
        while ((resnet.GetProperty("workers").GetInt32() == 0 || video.GetProperty("workers").GetInt32() == 0 || ocr.GetProperty("workers").GetInt32() == 0)
            && DateTime.UtcNow < deadline && await Delay());

        Assert.Equal("video.analyze", video.GetProperty("pipeline").GetString());
        Assert.Equal(JsonValueKind.Null, video.GetProperty("input").ValueKind);
        Assert.Equal(["resnet18@1", "ppocr@4"], video.GetProperty("uses").EnumerateArray().Select(u => u.GetString()));
        Assert.Equal("image.ocr", ocr.GetProperty("pipeline").GetString());
        Assert.Equal(16, ocr.GetProperty("batching").GetProperty("max_batch_size").GetInt32());
        Assert.True(ocr.GetProperty("workers").GetInt32() >= 1);
        Assert.Empty(resnet.GetProperty("uses").EnumerateArray());

        Assert.Equal("image.embed", resnet.GetProperty("pipeline").GetString());
        Assert.True(resnet.GetProperty("latest").GetBoolean());
        Assert.Equal(8, resnet.GetProperty("batching").GetProperty("max_batch_size").GetInt32());
        Assert.True(resnet.GetProperty("workers").GetInt32() >= 1);
        Assert.Contains(resnet.GetProperty("execution_providers").EnumerateArray().Select(p => p.GetString()), p => p is "cpu" or "cuda");

        static async Task<bool> Delay()
        {
            await Task.Delay(200);
            return true;
        }
    }

    [Fact]
    public async Task The_openapi_document_and_the_reference_page_describe_every_route()
    {
        using var client = serving.Api.CreateClient();
        var document = await client.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var paths = document.GetProperty("paths");
        foreach (var path in new[] { "/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/events", "/v1/jobs/{id}/cancel", "/v1/models" })
        {
            Assert.True(paths.TryGetProperty(path, out _), $"{path} is missing from the OpenAPI document");
        }

        var page = await client.GetAsync("/docs"); // redirected to /docs/, Scalar's page
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("openapi/v1.json", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
