using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Async.Serving.Api.Auth;
using Async.Serving.Api.Batches;
using Async.Serving.Cli;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// Batch jobs end to end: a JSONL file through <c>POST /v1/batches</c>, its lines made into jobs by
/// Hangfire chunks and run by the fixture's worker, the results file, counts, cancel, the
/// <c>batch.completed</c> webhook, and the limits. Each test has a tenant of its own.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class BatchTests(ServingFixture serving)
{
    private static readonly TimeSpan BatchWait = TimeSpan.FromSeconds(120);

    private static Dictionary<string, string?> Settings(bool hangfire, IDictionary<string, string?>? more = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Serving:Auth:DevelopmentTenant"] = "batches-" + Guid.NewGuid().ToString("N")[..8],
            ["Serving:Security:AllowPrivateNetworks"] = "true",
            ["Serving:Hangfire:RunServer"] = hangfire ? "true" : "false",
            ["Serving:Batches:ChunkSize"] = "7",
        };
        foreach (var (k, v) in more ?? new Dictionary<string, string?>())
        {
            settings[k] = v;
        }

        return settings;
    }

    private static string Jsonl(IEnumerable<object> lines) =>
        string.Join('\n', lines.Select(l => l as string ?? JsonSerializer.Serialize(l))) + "\n";

    private static object Image(string customId, int seed) => new
    {
        custom_id = customId,
        pipeline = "image.embed",
        model = "resnet18",
        input = new { base64 = Convert.ToBase64String(TestImages.Scene(seed, 160, 120)) },
    };

    private static async Task<HttpResponseMessage> PostAsync(HttpClient client, string jsonl, string query = "") =>
        await client.PostAsync("/v1/batches" + query, new StringContent(jsonl, Encoding.UTF8, "application/jsonl"));

    private static async Task<JsonElement> CreateAsync(HttpClient client, string jsonl, string query = "")
    {
        var response = await PostAsync(client, jsonl, query);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, text);
        var batch = JsonDocument.Parse(text).RootElement;
        Assert.Equal($"/v1/batches/{batch.GetProperty("id").GetString()}", response.Headers.Location?.OriginalString);
        return batch;
    }

    private static async Task<JsonElement> WaitForEndAsync(HttpClient client, string id)
    {
        var deadline = DateTime.UtcNow + BatchWait;
        while (true)
        {
            var batch = await client.GetFromJsonAsync<JsonElement>($"/v1/batches/{id}");
            var status = batch.GetProperty("status").GetString();
            if (status is "completed" or "cancelled")
            {
                return batch;
            }

            Assert.True(DateTime.UtcNow < deadline, $"batch {id} still {status} after {BatchWait.TotalSeconds} s: {batch}");
            await Task.Delay(200);
        }
    }

    private static async Task<List<JsonElement>> ResultsAsync(HttpClient client, string id)
    {
        var response = await client.GetAsync($"/v1/batches/{id}/results", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/jsonl", response.Content.Headers.ContentType?.MediaType);
        var lines = new List<JsonElement>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
        {
            lines.Add(JsonDocument.Parse(line).RootElement);
        }

        return lines;
    }

    private static int Count(JsonElement batch, string status) => batch.GetProperty("counts").GetProperty(status).GetInt32();

    private static string[] CountNames => ["pending", "queued", "running", "succeeded", "failed", "cancelled", "expired", "errored"];

    [Fact]
    public async Task Results_come_in_input_order_with_per_line_errors_counts_add_up_and_one_signed_batch_completed_webhook_arrives()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(Settings(hangfire: true));
        using var client = serving.Client(api);
        var url = receiver.NewUrl();

        // 30 lines: 24 images, and lines that fail their checks, one that fails in the worker, a blank line.
        var lines = new List<object>();
        var expected = new Dictionary<string, (string Status, string? Code)>();
        for (var i = 0; i < 30; i++)
        {
            var customId = $"req-{i:00}";
            switch (i)
            {
                case 3:
                    lines.Add(new { custom_id = customId, pipeline = "image.embed", model = "resnet18", input = new { base64 = "not base64 at all!" } });
                    expected[customId] = ("errored", "input_invalid");
                    break;
                case 9:
                    lines.Add(new { custom_id = customId, pipeline = "image.embed", model = "no-such-model", input = new { base64 = Convert.ToBase64String(TestImages.Scene(1, 64, 48)) } });
                    expected[customId] = ("errored", "unknown_model");
                    break;
                case 15:
                    lines.Add(new { custom_id = customId, pipeline = "image.nothing", input = new { base64 = Convert.ToBase64String(TestImages.Scene(2, 64, 48)) } });
                    expected[customId] = ("errored", "unknown_pipeline");
                    break;
                case 21:
                    lines.Add(new { custom_id = customId, pipeline = "image.embed", model = "resnet18", input = new { base64 = Convert.ToBase64String(TestImages.TruncatedJpeg()) } });
                    expected[customId] = ("failed", null);
                    break;
                case 27:
                    lines.Add(new { custom_id = customId, pipeline = "image.embed", ttl_seconds = -5, input = new { base64 = Convert.ToBase64String(TestImages.Scene(3, 64, 48)) } });
                    expected[customId] = ("errored", "input_invalid");
                    break;
                default:
                    lines.Add(Image(customId, 300 + i));
                    expected[customId] = ("succeeded", null);
                    break;
            }

            if (i == 12)
            {
                lines.Add("   "); // blank: no line of the batch
            }
        }

        var created = await CreateAsync(client, Jsonl(lines), "?webhook_url=" + Uri.EscapeDataString(url));
        var id = created.GetProperty("id").GetString()!;
        Assert.StartsWith("batch_", id, StringComparison.Ordinal);
        Assert.Equal("validating", created.GetProperty("status").GetString());
        Assert.Equal(30, created.GetProperty("total").GetInt32());
        Assert.Equal(30, Count(created, "pending"));
        Assert.Equal(url, created.GetProperty("webhook").GetProperty("url").GetString());

        var done = await WaitForEndAsync(client, id);
        Assert.Equal("completed", done.GetProperty("status").GetString());
        Assert.Equal(30, CountNames.Sum(n => Count(done, n)));
        Assert.Equal(25, Count(done, "succeeded"));
        Assert.Equal(1, Count(done, "failed"));
        Assert.Equal(4, Count(done, "errored"));
        Assert.Equal(1.0, done.GetProperty("progress").GetDouble());
        Assert.True(done.TryGetProperty("completed_at", out var completedAt) && completedAt.ValueKind == JsonValueKind.String);

        var results = await ResultsAsync(client, id);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), results.Select(r => r.GetProperty("custom_id").GetString()!));
        Assert.Equal(results.Select(r => r.GetProperty("line").GetInt32()).Order(), results.Select(r => r.GetProperty("line").GetInt32()));
        foreach (var result in results)
        {
            var (status, code) = expected[result.GetProperty("custom_id").GetString()!];
            Assert.Equal(status, result.GetProperty("status").GetString());
            switch (status)
            {
                case "succeeded":
                    Assert.Equal(512, result.GetProperty("output").GetProperty("dims").GetInt32());
                    Assert.False(result.TryGetProperty("error", out _));
                    var job = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{result.GetProperty("job_id").GetString()}");
                    Assert.Equal("succeeded", job.GetProperty("status").GetString());
                    break;
                case "failed":
                    Assert.False(string.IsNullOrEmpty(result.GetProperty("error").GetProperty("code").GetString()));
                    Assert.True(result.TryGetProperty("job_id", out _));
                    break;
                default:
                    Assert.Equal(code, result.GetProperty("error").GetProperty("code").GetString());
                    Assert.False(string.IsNullOrEmpty(result.GetProperty("error").GetProperty("message").GetString()));
                    Assert.False(result.TryGetProperty("job_id", out _), "an errored line has no job");
                    break;
            }
        }

        // The webhook: once, signed with the tenant's secret like a job's, the batch as its data.
        var secret = (await client.GetFromJsonAsync<JsonElement>("/v1/webhooks/secret")).GetProperty("secret").GetString()!;
        var hook = Assert.Single(await receiver.WaitForAsync(url, 1, BatchWait));
        Assert.Equal($"msg_{id}_completed", hook.Id);
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        var signature = "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{hook.Id}.{hook.Timestamp}.{hook.Body}")));
        Assert.Contains(signature, hook.Signature.Split(' '));
        var body = JsonDocument.Parse(hook.Body).RootElement;
        Assert.Equal("batch.completed", body.GetProperty("type").GetString());
        Assert.Equal(id, body.GetProperty("data").GetProperty("id").GetString());
        Assert.Equal("completed", body.GetProperty("data").GetProperty("status").GetString());
        Assert.Equal(25, Count(body.GetProperty("data"), "succeeded"));

        // The sweep (and further ledger writes) find the batch ended and announced: no second delivery.
        await api.Services.GetRequiredService<BatchRunner>().SweepAsync(CancellationToken.None);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Single(receiver.Requests, r => r.Path == new Uri(url).AbsolutePath);
    }

    [Fact]
    public async Task A_malformed_file_is_refused_with_its_line_numbers_and_makes_no_batch()
    {
        await using var api = serving.CreateApi(Settings(hangfire: false));
        using var client = serving.Client(api);
        var jsonl = Jsonl([
            Image("a", 1),
            new { pipeline = "image.embed", input = new { url = "https://example.com/x.jpg" } },
            "{ \"custom_id\": \"c\", \"pipeline\": ",
            Image("a", 2),
            new { custom_id = 42, pipeline = "image.embed" },
            "[1, 2]",
            Image("ok", 3),
        ]);

        var problem = await Problems.AssertAsync(await PostAsync(client, jsonl), HttpStatusCode.BadRequest, "input_invalid");
        var errors = problem.GetProperty("errors");
        Assert.Equal(["line 2", "line 3", "line 4", "line 5", "line 6"], errors.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Contains("custom_id", errors.GetProperty("line 2")[0].GetString(), StringComparison.Ordinal);
        Assert.Contains("line 1", errors.GetProperty("line 4")[0].GetString(), StringComparison.Ordinal);

        var list = await client.GetFromJsonAsync<JsonElement>("/v1/batches");
        Assert.Empty(list.GetProperty("data").EnumerateArray());

        await Problems.AssertAsync(await client.PostAsync("/v1/batches", new StringContent(Jsonl([Image("x", 1)]), Encoding.UTF8, "text/csv")),
            HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
        await Problems.AssertAsync(await PostAsync(client, "\n\n"), HttpStatusCode.BadRequest, "input_invalid");
    }

    [Fact]
    public async Task Over_the_limits_is_413_and_a_large_body_is_not_read_to_its_end()
    {
        await using var api = serving.CreateApi(Settings(hangfire: false, new Dictionary<string, string?>
        {
            ["Serving:Batches:MaxBytes"] = "65536",
            ["Serving:Batches:MaxLines"] = "5",
        }));
        using var client = serving.Client(api);

        // Declared too large: refused before a byte is read.
        var big = new string('x', 70_000);
        await Problems.AssertAsync(await PostAsync(client, Jsonl([new { custom_id = "a", note = big }])), HttpStatusCode.RequestEntityTooLarge, "input_too_large");

        // Too many lines.
        await Problems.AssertAsync(await PostAsync(client, Jsonl(Enumerable.Range(0, 6).Select(i => (object)new { custom_id = $"l{i}" }))),
            HttpStatusCode.RequestEntityTooLarge, "input_too_large");

        // Streamed without a length, beyond the limit: refused once the limit is passed.
        var content = new StreamContent(new EndlessLines(maxBytes: 1024 * 1024));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        using (var response = await client.PostAsync("/v1/batches", content))
        {
            await Problems.AssertAsync(response, HttpStatusCode.RequestEntityTooLarge, "input_too_large");
        }

        // The reader stops there: of a body of 512 MiB it reads about the limit, never the whole body;
        // with an Idempotency-Key too (the file's hash is taken from the bytes as they are read).
        foreach (var idempotencyKey in new[] { null, "big-upload" })
        {
            var endless = new EndlessLines(maxBytes: 512L * 1024 * 1024);
            var http = new DefaultHttpContext { RequestServices = api.Services };
            http.Request.ContentType = "application/jsonl";
            http.Request.Body = endless;
            var (batch, problem) = await api.Services.GetRequiredService<BatchUpload>().CreateAsync(http.Request, "batches-limit", null, idempotencyKey, CancellationToken.None);
            Assert.Null(batch);
            Assert.Equal(StatusCodes.Status413PayloadTooLarge, problem?.StatusCode);
            Assert.True(endless.BytesRead < 1024 * 1024, $"the reader read {endless.BytesRead:N0} bytes of a body over a 64 KiB limit (key: {idempotencyKey})");
        }

        var list = await client.GetFromJsonAsync<JsonElement>("/v1/batches");
        Assert.Empty(list.GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task Cancel_cancels_the_queued_jobs_and_stops_making_the_remaining_lines()
    {
        // A model no worker serves: its jobs stay queued. No Hangfire server: the test runs the chunks.
        using var models = new PrivateModels();
        await using var api = serving.CreateApi(Settings(hangfire: false, new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path }));
        using var client = serving.Client(api);
        var lines = Enumerable.Range(0, 20).Select(i => (object)new
        {
            custom_id = $"c{i}",
            pipeline = "image.embed",
            model = models.Name,
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(i, 64, 48)) },
        });
        var id = (await CreateAsync(client, Jsonl(lines))).GetProperty("id").GetString()!;
        var runner = api.Services.GetRequiredService<BatchRunner>();
        await runner.RunChunkAsync(id, 0, 0, CancellationToken.None);

        var running = await client.GetFromJsonAsync<JsonElement>($"/v1/batches/{id}");
        Assert.Equal("in_progress", running.GetProperty("status").GetString());
        Assert.Equal(7, Count(running, "queued"));
        Assert.Equal(13, Count(running, "pending"));
        var jobIds = (await ResultsAsync(client, id)).Where(r => r.TryGetProperty("job_id", out _)).Select(r => r.GetProperty("job_id").GetString()!).ToList();
        Assert.Equal(7, jobIds.Count);

        var cancel = await client.PostAsync($"/v1/batches/{id}/cancel", null);
        await Problems.AssertStatusAsync(cancel, HttpStatusCode.Accepted);
        var cancelled = await cancel.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("cancelled", cancelled.GetProperty("status").GetString()); // queued jobs end at once
        Assert.Equal(20, Count(cancelled, "cancelled"));
        foreach (var jobId in jobIds)
        {
            Assert.Equal("cancelled", (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobId}")).GetProperty("status").GetString());
        }

        // The next chunk (already enqueued) makes nothing.
        await runner.RunChunkAsync(id, 7, 0, CancellationToken.None);
        var results = await ResultsAsync(client, id);
        Assert.Equal(20, results.Count);
        Assert.All(results, r => Assert.Equal("cancelled", r.GetProperty("status").GetString()));
        Assert.Equal(7, results.Count(r => r.TryGetProperty("job_id", out _)));

        await Problems.AssertAsync(await client.PostAsync($"/v1/batches/{id}/cancel", null), HttpStatusCode.Conflict, "conflict");
    }

    [Fact]
    public async Task A_chunk_run_again_makes_no_second_job_and_another_tenant_sees_nothing()
    {
        using var models = new PrivateModels();
        await using var api = serving.CreateApi(Settings(hangfire: false, new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path }));
        using var client = serving.Client(api);
        var lines = Enumerable.Range(0, 5).Select(i => (object)new
        {
            custom_id = $"r{i}",
            pipeline = "image.embed",
            model = models.Name,
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(40 + i, 64, 48)) },
        });
        var id = (await CreateAsync(client, Jsonl(lines))).GetProperty("id").GetString()!;
        var data = api.Services.GetRequiredService<NpgsqlDataSource>();
        var bodies = new Dictionary<int, byte[]>();
        await using (var read = data.CreateCommand($"SELECT line, body FROM batch_lines WHERE batch_id = '{id}'"))
        await using (var reader = await read.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                bodies[reader.GetInt32(0)] = (byte[])reader.GetValue(1);
            }
        }

        var runner = api.Services.GetRequiredService<BatchRunner>();
        await runner.RunChunkAsync(id, 0, 0, CancellationToken.None);
        var first = (await ResultsAsync(client, id)).Select(r => r.GetProperty("job_id").GetString()).ToList();
        Assert.Equal(5, first.Distinct().Count());

        // Run again as is: every line has its job.
        await runner.RunChunkAsync(id, 0, 0, CancellationToken.None);
        Assert.Equal(first, (await ResultsAsync(client, id)).Select(r => r.GetProperty("job_id").GetString()));

        // Run again as after a crash between the submits and the lines' records: the same jobs come back.
        foreach (var (line, body) in bodies)
        {
            await using var reset = data.CreateCommand("UPDATE batch_lines SET job_id = NULL, status = 'pending', body = $3 WHERE batch_id = $1 AND line = $2");
            reset.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
            reset.Parameters.Add(new NpgsqlParameter<int> { TypedValue = line });
            reset.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = body });
            await reset.ExecuteNonQueryAsync();
        }

        await runner.RunChunkAsync(id, 0, 0, CancellationToken.None);
        Assert.Equal(first, (await ResultsAsync(client, id)).Select(r => r.GetProperty("job_id").GetString()));
        var batch = await client.GetFromJsonAsync<JsonElement>($"/v1/batches/{id}");
        Assert.Equal(5, Count(batch, "queued"));

        // The batch is listed for its tenant, and for another tenant it does not exist.
        var list = await client.GetFromJsonAsync<JsonElement>("/v1/batches?limit=1");
        Assert.Equal(id, Assert.Single(list.GetProperty("data").EnumerateArray()).GetProperty("id").GetString());
        var other = await api.Services.GetRequiredService<ApiKeyStore>().CreateAsync("other-" + Guid.NewGuid().ToString("N")[..8], "o", null, CancellationToken.None);
        using var otherClient = serving.Client(api, other.Key);
        await Problems.AssertAsync(await otherClient.GetAsync($"/v1/batches/{id}"), HttpStatusCode.NotFound, "not_found");
        await Problems.AssertAsync(await otherClient.GetAsync($"/v1/batches/{id}/results"), HttpStatusCode.NotFound, "not_found");
        await Problems.AssertAsync(await otherClient.PostAsync($"/v1/batches/{id}/cancel", null), HttpStatusCode.NotFound, "not_found");
        Assert.Empty((await otherClient.GetFromJsonAsync<JsonElement>("/v1/batches")).GetProperty("data").EnumerateArray());
        Assert.Equal("in_progress", (await client.GetFromJsonAsync<JsonElement>($"/v1/batches/{id}")).GetProperty("status").GetString());

        await client.PostAsync($"/v1/batches/{id}/cancel", null); // leaves no queued job behind
    }

    [Fact]
    public async Task An_idempotency_key_gives_the_first_batch_back_refuses_another_batch_and_belongs_to_its_tenant()
    {
        // The fixture's API (no Hangfire server: the batches stay validating) and two tenants of their own.
        var keys = serving.Api.Services.GetRequiredService<ApiKeyStore>();
        var tenantA = await keys.CreateAsync("idem-a-" + Guid.NewGuid().ToString("N")[..8], "a", null, CancellationToken.None);
        var tenantB = await keys.CreateAsync("idem-b-" + Guid.NewGuid().ToString("N")[..8], "b", null, CancellationToken.None);
        using var a = serving.Client(key: tenantA.Key);
        using var b = serving.Client(key: tenantB.Key);
        var key = "nightly-" + Guid.NewGuid().ToString("N");
        var file = Jsonl([Image("k-0", 700), Image("k-1", 701)]);

        async Task<(HttpResponseMessage Response, JsonElement Body)> KeyedPostAsync(HttpClient client, HttpContent body, string idempotencyKey)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/batches") { Content = body };
            request.Headers.TryAddWithoutValidation("Idempotency-Key", idempotencyKey);
            var response = await client.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            return (response, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
        }

        StringContent AsJsonl(string text) => new(text, Encoding.UTF8, "application/jsonl");

        MultipartFormDataContent Multipart(string text, string? metadata = null)
        {
            var form = new MultipartFormDataContent();
            if (metadata is not null)
            {
                form.Add(new StringContent($$"""{"metadata":{{metadata}}}""", Encoding.UTF8, "application/json"), "request");
            }

            form.Add(new StringContent(text, Encoding.UTF8, "application/jsonl"), "file", "batch.jsonl");
            return form;
        }

        var (created, first) = await KeyedPostAsync(a, AsJsonl(file), key);
        Assert.True(created.StatusCode == HttpStatusCode.Accepted, first.ToString());
        Assert.False(created.Headers.Contains("Idempotent-Replayed"));
        var id = first.GetProperty("id").GetString()!;

        // The same key and the same file: the first batch again, with the answer of a first submit.
        var (again, replayed) = await KeyedPostAsync(a, AsJsonl(file), key);
        await Problems.AssertStatusAsync(again, HttpStatusCode.Accepted);
        Assert.Equal("true", Assert.Single(again.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(id, replayed.GetProperty("id").GetString());
        Assert.Equal($"/v1/batches/{id}", again.Headers.Location?.OriginalString);
        Assert.Equal(2, replayed.GetProperty("total").GetInt32());

        // The same file as a multipart upload (another framing, a boundary of its own): the same batch.
        var (framed, framedBody) = await KeyedPostAsync(a, Multipart(file), key);
        await Problems.AssertStatusAsync(framed, HttpStatusCode.Accepted);
        Assert.Equal(id, framedBody.GetProperty("id").GetString());

        // Another file, or the same file with other batch fields: 422, and no batch made.
        await Problems.AssertAsync((await KeyedPostAsync(a, AsJsonl(Jsonl([Image("k-0", 700)])), key)).Response,
            HttpStatusCode.UnprocessableEntity, "idempotency_mismatch");
        await Problems.AssertAsync((await KeyedPostAsync(a, Multipart(file, metadata: """{"run":"other"}"""), key)).Response,
            HttpStatusCode.UnprocessableEntity, "idempotency_mismatch");
        var listed = (await a.GetFromJsonAsync<JsonElement>("/v1/batches")).GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(id, Assert.Single(listed).GetProperty("id").GetString());

        // Another tenant, the same key and file: a batch of its own.
        var (elsewhere, otherBatch) = await KeyedPostAsync(b, AsJsonl(file), key);
        await Problems.AssertStatusAsync(elsewhere, HttpStatusCode.Accepted);
        Assert.False(elsewhere.Headers.Contains("Idempotent-Replayed"));
        Assert.NotEqual(id, otherBatch.GetProperty("id").GetString());

        // A job with the key the tenant gave a batch is a job: job keys and batch keys are apart.
        using var job = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs")
        {
            Content = new StringContent(JsonSerializer.Serialize(new
            {
                pipeline = "image.embed",
                input = new { base64 = Convert.ToBase64String(TestImages.Scene(702, 96, 72)) },
            }), Encoding.UTF8, "application/json"),
        };
        job.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        var submitted = await a.SendAsync(job);
        Assert.True(submitted.StatusCode == HttpStatusCode.Accepted, await submitted.Content.ReadAsStringAsync());
        Assert.False(submitted.Headers.Contains("Idempotent-Replayed"));

        // A key that cannot be one: 400 before the body is read, naming the header.
        var bad = await Problems.AssertAsync((await KeyedPostAsync(a, AsJsonl(file), new string('k', 256))).Response, HttpStatusCode.BadRequest, "input_invalid");
        Assert.True(bad.GetProperty("errors").TryGetProperty("Idempotency-Key", out _), bad.ToString());
        Assert.Single((await a.GetFromJsonAsync<JsonElement>("/v1/batches")).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task The_cli_run_again_with_the_same_idempotency_key_gives_the_first_batch_back_with_or_without_priority()
    {
        // A tenant of its own, so that its batch list holds only what this test made.
        var keys = serving.Api.Services.GetRequiredService<ApiKeyStore>();
        var tenant = await keys.CreateAsync("idem-cli-" + Guid.NewGuid().ToString("N")[..8], "cli", null, CancellationToken.None);
        var folder = Directory.CreateTempSubdirectory("serving-batch-key-");
        try
        {
            var cli = new CliRunner(serving, folder.FullName, tenant.Key);
            await File.WriteAllTextAsync(Path.Combine(folder.FullName, "nightly.jsonl"), Jsonl([Image("n-0", 720), Image("n-1", 721)]));
            await File.WriteAllTextAsync(Path.Combine(folder.FullName, "other.jsonl"), Jsonl([Image("o-0", 722)]));

            async Task<string> SubmitAsync(params string[] args)
            {
                var run = await cli.RunAsync(["batch", "submit", .. args, "--json"]);
                Assert.True(run.ExitCode == ExitCodes.Ok, run.Error);
                return JsonDocument.Parse(run.Out).RootElement.GetProperty("id").GetString()!;
            }

            // The file as it is (a stream the client could replay itself), twice with one key: one batch.
            var key = "nightly-" + Guid.NewGuid().ToString("N");
            var first = await SubmitAsync("nightly.jsonl", "--idempotency-key", key);
            Assert.Equal(first, await SubmitAsync("nightly.jsonl", "--idempotency-key", key));

            // --priority rewrites the lines while they stream (no replay by the client): a rerun sends the
            // same rewritten bytes, so the fingerprint matches and the key gives that batch back.
            var priorityKey = "urgent-" + Guid.NewGuid().ToString("N");
            var prioritised = await SubmitAsync("nightly.jsonl", "--priority", "high", "--idempotency-key", priorityKey);
            Assert.NotEqual(first, prioritised);
            Assert.Equal(prioritised, await SubmitAsync("nightly.jsonl", "--priority", "high", "--idempotency-key", priorityKey));

            // The key with another file: the API's idempotency_mismatch, exit 3, no batch.
            var mismatch = await cli.RunAsync("batch", "submit", "other.jsonl", "--idempotency-key", key, "--json");
            Assert.Equal(ExitCodes.ApiError, mismatch.ExitCode);
            Assert.Contains("idempotency_mismatch", mismatch.Error, StringComparison.Ordinal);

            // A key the API would refuse: a usage error before anything is sent.
            var tooLong = await cli.RunAsync("batch", "submit", "other.jsonl", "--idempotency-key", new string('k', 256));
            Assert.Equal(ExitCodes.Usage, tooLong.ExitCode);
            Assert.Contains("--idempotency-key must be 1 to 255 visible ASCII characters or spaces: it has 256.", tooLong.Error, StringComparison.Ordinal);

            using var http = serving.Client(key: tenant.Key);
            using var client = new Async.Serving.Client.ServingClient(http);
            Assert.Equal([prioritised, first], (await client.ListBatchesAsync(limit: 100)).Data.Select(b => b.Id));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task The_client_and_the_cli_submit_a_batch_follow_it_and_stream_its_results()
    {
        // The fixture's API (no Hangfire server: the test runs the chunk) and its worker.
        using var http = serving.Client();
        using var client = new Async.Serving.Client.ServingClient(http);
        var items = Enumerable.Range(0, 4).Select(i => new Async.Serving.Client.BatchItem
        {
            CustomId = $"client-{i}",
            Pipeline = "image.embed",
            Model = i == 2 ? "no-such-model" : "resnet18",
            Input = Async.Serving.Client.JobInput.FromBytes(TestImages.Scene(500 + i, 96, 72), "scene.jpg"),
            Priority = i == 3 ? "low" : null,
        });
        var batch = await client.SubmitBatchAsync(items);
        Assert.Equal("validating", batch.Status);
        Assert.Equal(4, batch.Total);

        await serving.Api.Services.GetRequiredService<BatchRunner>().RunChunkAsync(batch.Id, 0, 0, CancellationToken.None);
        var deadline = DateTime.UtcNow + BatchWait;
        while (!(batch = await client.GetBatchAsync(batch.Id)).IsEnded)
        {
            Assert.True(DateTime.UtcNow < deadline, $"batch {batch.Id} still {batch.Status}");
            await Task.Delay(200);
        }

        Assert.Equal(new Async.Serving.Client.BatchCounts(0, 0, 0, 3, 0, 0, 0, 1), batch.Counts);
        var results = new List<Async.Serving.Client.BatchResult>();
        await foreach (var result in client.GetBatchResultsAsync(batch.Id))
        {
            results.Add(result);
        }

        Assert.Equal(["client-0", "client-1", "client-2", "client-3"], results.Select(r => r.CustomId));
        Assert.Equal("unknown_model", results[2].Error?.Code);
        Assert.All(results.Where(r => r.CustomId != "client-2"),
            r => Assert.Equal(512, Assert.IsType<Async.Serving.Contracts.Outputs.ImageEmbedOutput>(r.Output).Dims));
        Assert.Contains(batch.Id, (await client.ListBatchesAsync(limit: 100)).Data.Select(b => b.Id));
        Assert.Equal("normal", (await client.GetAsync(results[0].JobId!)).Priority);
        Assert.Equal("low", (await client.GetAsync(results[3].JobId!)).Priority);

        // The CLI: results as JSONL on stdout; submit a file, then cancel it.
        var folder = Directory.CreateTempSubdirectory("serving-batch-cli-");
        try
        {
            var cli = new CliRunner(serving, folder.FullName);
            var lines = await cli.RunAsync("batch", "results", batch.Id);
            Assert.Equal(0, lines.ExitCode);
            Assert.Equal(["client-0", "client-1", "client-2", "client-3"],
                lines.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("custom_id").GetString()));

            await File.WriteAllTextAsync(Path.Combine(folder.FullName, "batch.jsonl"), Jsonl([Image("cli-0", 600), Image("cli-1", 601)]));
            var submitted = await cli.RunAsync("batch", "submit", "batch.jsonl", "--json");
            Assert.True(submitted.ExitCode == 0, submitted.Error);
            var id = JsonDocument.Parse(submitted.Out).RootElement.GetProperty("id").GetString()!;
            var cancelled = await cli.RunAsync("batch", "cancel", id, "--json");
            Assert.True(cancelled.ExitCode == 0, cancelled.Error);
            Assert.Equal("cancelled", JsonDocument.Parse(cancelled.Out).RootElement.GetProperty("status").GetString());
            var shown = await cli.RunAsync("batch", "get", id);
            Assert.Contains("cancelled", shown.Out, StringComparison.Ordinal);

            // --priority: every line that names none gets it; a line's own stays.
            await File.WriteAllTextAsync(Path.Combine(folder.FullName, "urgent.jsonl"), Jsonl([
                Image("p-0", 610),
                new { custom_id = "p-1", pipeline = "image.embed", model = "resnet18", priority = "low",
                      input = new { base64 = Convert.ToBase64String(TestImages.Scene(611, 96, 72)) } },
            ]));
            var prioritised = await cli.RunAsync("batch", "submit", "urgent.jsonl", "--priority", "high", "--json");
            Assert.True(prioritised.ExitCode == 0, prioritised.Error);
            var urgent = JsonDocument.Parse(prioritised.Out).RootElement.GetProperty("id").GetString()!;
            await serving.Api.Services.GetRequiredService<BatchRunner>().RunChunkAsync(urgent, 0, 0, CancellationToken.None);
            var made = new List<string>();
            await foreach (var result in client.GetBatchResultsAsync(urgent))
            {
                made.Add((await client.GetAsync(result.JobId ?? throw new InvalidOperationException($"{result.CustomId}: {result.Status} {result.Error?.Code}"))).Priority);
            }

            Assert.Equal(["high", "low"], made);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    /// <summary>A body that goes on up to <c>maxBytes</c> (one JSON line that never ends), counting what was read of it.</summary>
    private sealed class EndlessLines(long maxBytes) : Stream
    {
        private static readonly byte[] Line = Encoding.UTF8.GetBytes("{\"custom_id\":\"x\",\"pad\":\"" + new string('a', 4000));
        private long _read;

        public long BytesRead => Interlocked.Read(ref _read);

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = 0;
            while (n < count && _read < maxBytes)
            {
                // The opening once, then padding.
                var at = _read < Line.Length ? (int)_read : Line.Length - 1000;
                var take = (int)Math.Min(count - n, Line.Length - at);
                Line.AsSpan(at, take).CopyTo(buffer.AsSpan(offset + n));
                n += take;
                Interlocked.Add(ref _read, take);
            }

            return n;
        }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
