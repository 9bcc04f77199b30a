using System.Text;
using Async.Serving.Api.Auth;
using Async.Serving.Client;
using Async.Serving.Contracts.Outputs;
using Async.Serving.Fixtures;
using Microsoft.Extensions.DependencyInjection;
using StandardWebhooks.Diagnostics;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The .NET client library (src/Client) against the real stack: the fixture's API (in memory) and
/// worker, real RabbitMQ, Redis and PostgreSQL.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class ClientTests(ServingFixture serving)
{
    private static readonly TimeSpan Wait = ServingFixture.JobWait;

    private ServingClient Client(Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactory<Program>? api = null, string? key = null) =>
        new(serving.Client(api, key));

    private static float Norm(float[] values) => MathF.Sqrt(values.Sum(v => v * v));

    [Fact]
    public async Task A_file_submitted_as_multipart_is_embedded_and_read_as_a_typed_output()
    {
        using var client = Client();
        var path = Path.Combine(Directory.CreateTempSubdirectory("client-").FullName, "scene.jpg");
        await File.WriteAllBytesAsync(path, TestImages.Scene(80, 320, 240));

        var ticket = await client.SubmitAsync(new SubmitRequest
        {
            Pipeline = "image.embed",
            Model = "resnet18",
            Input = JobInput.FromFile(path),
            Metadata = System.Text.Json.JsonDocument.Parse("""{"source":"client-test"}""").RootElement,
        });
        Assert.Equal(JobStatuses.Queued, ticket.Status);
        Assert.False(ticket.IsTerminal);
        Assert.Null(ticket.Output);

        var job = await client.WaitAsync(ticket.Id, Wait);
        Assert.Equal(JobStatuses.Succeeded, job.Status);
        Assert.Equal("resnet18@1", job.Model);
        Assert.Equal(TimeSpan.Zero, job.CreatedAt.Offset);
        Assert.True(job.CompletedAt >= job.CreatedAt);
        Assert.Equal("client-test", job.Metadata!.Value.GetProperty("source").GetString());
        var output = Assert.IsType<ImageEmbedOutput>(job.Output);
        Assert.Equal(512, output.Dims);
        Assert.Equal(512, output.Embedding.Length);
        Assert.InRange(Norm(output.Embedding), 0.99f, 1.01f);
    }

    [Fact]
    public async Task Bytes_and_a_stream_give_the_same_embedding_and_RunAsync_returns_the_finished_job()
    {
        using var client = Client();
        var image = TestImages.Scene(81, 320, 240);
        var fromBytes = await client.RunAsync(new SubmitRequest { Pipeline = "image.embed", Model = "resnet18", Input = JobInput.FromBytes(image, "a.jpg") }, Wait);
        using var stream = new MemoryStream(image);
        var fromStream = await client.RunAsync(new SubmitRequest { Pipeline = "image.embed", Model = "resnet18", Input = JobInput.FromStream(stream, "b.jpg") }, Wait);

        Assert.Equal(JobStatuses.Succeeded, fromBytes.Status);
        Assert.Equal(JobStatuses.Succeeded, fromStream.Status);
        Assert.NotEqual(fromBytes.Id, fromStream.Id);
        Assert.Equal(((ImageEmbedOutput)fromBytes.Output!).Embedding, ((ImageEmbedOutput)fromStream.Output!).Embedding);
    }

    [Fact]
    public async Task An_ocr_job_is_read_back_as_lines_of_text()
    {
        using var client = Client();
        var image = TextImages.Line("Invoice 2026-0412 due on 15 May", size: 40, font: TextImages.Serif, format: SkiaSharp.SKEncodedImageFormat.Jpeg);

        var job = await client.RunAsync(new SubmitRequest { Pipeline = "image.ocr", Model = "ppocr", Input = JobInput.FromBytes(image, "line.jpg") }, Wait);

        Assert.Equal(JobStatuses.Succeeded, job.Status);
        var output = Assert.IsType<ImageOcrOutput>(job.Output);
        var line = Assert.Single(output.Lines);
        Assert.Equal("Invoice 2026-0412 due on 15 May", line.Text);
        Assert.Equal(4, line.Box.Count);
        Assert.True(output.Width > output.Height);
    }

    [Fact]
    public async Task A_url_input_is_sent_as_json_and_fetched_by_the_api()
    {
        await using var remote = await LocalImageServer.StartAsync();
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Security:AllowPrivateNetworks"] = "true",
            ["Serving:Auth:DevelopmentTenant"] = "client-url-" + Guid.NewGuid().ToString("N")[..8],
        });
        using var client = Client(api);

        var job = await client.RunAsync(new SubmitRequest { Pipeline = "image.embed", Model = "resnet18", Input = JobInput.FromUrl(remote.Url("/image.jpg")) }, Wait);

        Assert.Equal(JobStatuses.Succeeded, job.Status);
        Assert.Equal(["/image.jpg"], remote.Requests);
        Assert.Equal(512, Assert.IsType<ImageEmbedOutput>(job.Output).Dims);
    }

    [Fact]
    public async Task The_same_idempotency_key_gives_the_first_job_back()
    {
        using var client = Client();
        var request = new SubmitRequest
        {
            Pipeline = "image.embed",
            Model = "resnet18",
            Input = JobInput.FromBytes(TestImages.Scene(82, 160, 120), "a.jpg"),
            IdempotencyKey = "client-" + Guid.NewGuid().ToString("N"),
        };

        var first = await client.SubmitAsync(request);
        var again = await client.SubmitAsync(request);
        var other = await client.SubmitAsync(request with { IdempotencyKey = null });

        Assert.Equal(first.Id, again.Id);
        Assert.NotEqual(first.Id, other.Id);
    }

    [Fact]
    public async Task Problems_become_ServingApiException_with_the_problem_code()
    {
        using var client = Client();
        var image = JobInput.FromBytes(TestImages.Scene(83, 160, 120), "a.jpg");

        var unknownModel = await Assert.ThrowsAsync<ServingApiException>(() =>
            client.SubmitAsync(new SubmitRequest { Pipeline = "image.embed", Model = "no-such-model", Input = image }));
        var unknownPipeline = await Assert.ThrowsAsync<ServingApiException>(() =>
            client.SubmitAsync(new SubmitRequest { Pipeline = "audio.transcribe", Model = "resnet18", Input = image }));
        var missing = await Assert.ThrowsAsync<ServingApiException>(() => client.GetAsync("no-such-job"));
        var invalid = await Assert.ThrowsAsync<ServingApiException>(() => client.ListAsync(new JobQuery(Status: "sleeping")));
        using var stranger = Client(key: "sk_test_not_a_key");
        var unauthorized = await Assert.ThrowsAsync<ServingApiException>(() => stranger.ListModelsAsync());

        Assert.Equal((422, "unknown_model"), (unknownModel.Status, unknownModel.Code));
        Assert.Contains("no-such-model", unknownModel.Detail, StringComparison.Ordinal);
        Assert.Equal((422, "unknown_pipeline"), (unknownPipeline.Status, unknownPipeline.Code));
        Assert.Equal((404, "not_found"), (missing.Status, missing.Code));
        Assert.Equal((400, "input_invalid"), (invalid.Status, invalid.Code));
        Assert.Contains("status", invalid.Errors!.Keys);
        Assert.Equal((401, "unauthorized"), (unauthorized.Status, unauthorized.Code));
    }

    [Fact]
    public async Task A_queued_job_is_cancelled_and_a_second_cancel_is_a_conflict()
    {
        // A model of its own that no worker serves: the job stays queued until cancelled.
        using var models = new PrivateModels();
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path });
        using var client = Client(api);
        var ticket = await client.SubmitAsync(new SubmitRequest { Pipeline = "image.embed", Model = models.Name, Input = JobInput.FromBytes(TestImages.Scene(84, 160, 120), "a.jpg") });

        var cancelled = await client.CancelAsync(ticket.Id);
        var again = await Assert.ThrowsAsync<ServingApiException>(() => client.CancelAsync(ticket.Id));

        Assert.Equal(JobStatuses.Cancelled, cancelled.Status);
        Assert.True(cancelled.IsTerminal);
        Assert.Equal((409, "conflict"), (again.Status, again.Code));
        Assert.Equal(JobStatuses.Cancelled, (await client.GetAsync(ticket.Id)).Status);
        var listed = await client.ListAsync(new JobQuery(Status: JobStatuses.Cancelled, Limit: 100));
        Assert.Contains(listed.Data, j => j.Id == ticket.Id);
    }

    [Fact]
    public async Task ListAllAsync_pages_through_the_tenants_jobs_newest_first()
    {
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Auth:DevelopmentTenant"] = "client-list-" + Guid.NewGuid().ToString("N")[..8] });
        using var client = Client(api);
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add((await client.SubmitAsync(new SubmitRequest { Pipeline = "image.embed", Model = "resnet18", Input = JobInput.FromBytes(TestImages.Scene(85 + i, 96, 96), "a.jpg") })).Id);
        }

        var firstPage = await client.ListAsync(new JobQuery(Limit: 2));
        var all = new List<Job>();
        await foreach (var job in client.ListAllAsync(new JobQuery(Pipeline: "image.embed", Limit: 2)))
        {
            all.Add(job);
        }

        Assert.Equal(2, firstPage.Data.Count);
        Assert.NotNull(firstPage.NextCursor);
        Assert.Equal(Enumerable.Reverse(ids), all.Select(j => j.Id));
    }

    [Fact]
    public async Task Events_show_progress_and_completion_and_resume_after_a_dropped_stream_without_repeats()
    {
        var cutter = new CutAfterFirstProgress();
        using var http = serving.Api.CreateDefaultClient(cutter);
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", serving.ApiKey);
        using var client = new ServingClient(http);
        var video = await TestVideos.ShotsAsync([(31, 8.0), (32, 8.0)], width: 320, height: 240);
        var ticket = await client.SubmitAsync(new SubmitRequest
        {
            Pipeline = "video.analyze",
            Model = "video",
            Input = JobInput.FromBytes(video, "shots.mp4"),
            Params = System.Text.Json.JsonDocument.Parse("""{"sample_fps":10}""").RootElement,
        });

        var events = new List<JobEvent>();
        using var timeout = new CancellationTokenSource(Wait);
        await foreach (var e in client.EventsAsync(ticket.Id, cancellationToken: timeout.Token))
        {
            events.Add(e);
        }

        // The first stream was cut after its first progress event; the second began with Last-Event-ID.
        Assert.Equal(2, cutter.Requests.Count);
        Assert.Null(cutter.Requests[0]);
        var progress = events.First(e => e.Type == "progress");
        Assert.Equal(progress.Id, cutter.Requests[1]);
        Assert.Equal(events.Count, events.Select(e => e.Id).Distinct().Count());
        Assert.Contains(events.SkipWhile(e => e != progress).Skip(1), e => e.Type is "progress" or "completed");
        Assert.Equal("completed", events[^1].Type);
        Assert.Single(events, e => e.Type == "completed");
        var output = Assert.IsType<VideoAnalyzeOutput>(events[^1].Job.Output);
        Assert.Equal(2, output.Shots.Count);
        Assert.True(events.Select(e => e.Job.Progress).SequenceEqual(events.Select(e => e.Job.Progress).Order()), "progress never goes back");
    }

    [Fact]
    public async Task Events_called_again_with_the_last_id_give_only_what_came_after()
    {
        using var client = Client();
        var job = await client.RunAsync(new SubmitRequest { Pipeline = "image.embed", Model = "resnet18", Input = JobInput.FromBytes(TestImages.Scene(90, 160, 120), "a.jpg") }, Wait);
        Assert.Equal(JobStatuses.Succeeded, job.Status);

        var whole = await ToListAsync(client.EventsAsync(job.Id));
        var completion = Assert.Single(whole);
        Assert.Equal("completed", completion.Type);
        Assert.IsType<ImageEmbedOutput>(completion.Job.Output);

        Assert.Empty(await ToListAsync(client.EventsAsync(job.Id, completion.Id)));
        var afterFirst = await ToListAsync(client.EventsAsync(job.Id, "1.0.0"));
        Assert.Equal([completion.Id], afterFirst.Select(e => e.Id));
    }

    [Fact]
    public async Task Models_usage_and_keys_are_read_and_managed()
    {
        var tenant = "client-keys-" + Guid.NewGuid().ToString("N")[..8];
        var store = serving.Api.Services.GetRequiredService<ApiKeyStore>();
        var admin = await store.CreateAsync(tenant, "admin", expiresAt: null, CancellationToken.None);
        using var client = Client(key: admin.Key);

        var models = await client.ListModelsAsync();
        var resnet = Assert.Single(models, m => m.Name == "resnet18");
        Assert.Equal(PipelineNames.ImageEmbed, resnet.Pipeline);
        Assert.True(resnet.Latest);
        Assert.True(resnet.Batching.MaxBatchSize >= 1);
        Assert.Contains(models, m => m.Pipeline == PipelineNames.ImageOcr);

        var from = DateTimeOffset.UtcNow.AddDays(-1);
        var usage = await client.GetUsageAsync(from, DateTimeOffset.UtcNow.AddMinutes(1));
        Assert.Equal(from.ToUnixTimeMilliseconds(), usage.From.ToUnixTimeMilliseconds());
        Assert.Empty(usage.Data); // a tenant of its own has run nothing
        var badPeriod = await Assert.ThrowsAsync<ServingApiException>(() => client.GetUsageAsync(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(-1)));
        Assert.Equal("input_invalid", badPeriod.Code);

        var created = await client.CreateKeyAsync("ci", expiresInDays: 7);
        Assert.StartsWith(created.Prefix, created.Key, StringComparison.Ordinal);
        Assert.False(created.Admin);
        Assert.True(created.ExpiresAt > DateTimeOffset.UtcNow.AddDays(6));
        var keys = await client.ListKeysAsync();
        Assert.Equal([created.Id, admin.Record.Id.ToString("N")], keys.Select(k => k.Id));

        var revoked = await client.RevokeKeyAsync(created.Id);
        Assert.NotNull(revoked.RevokedAt);
        using var withRevoked = Client(key: created.Key);
        Assert.Equal("unauthorized", (await Assert.ThrowsAsync<ServingApiException>(() => withRevoked.ListModelsAsync())).Code);
        Assert.Equal("not_found", (await Assert.ThrowsAsync<ServingApiException>(() => client.RevokeKeyAsync(Guid.NewGuid().ToString("N")))).Code);
    }

    [Fact]
    public async Task A_real_delivery_verifies_and_a_tampered_one_does_not()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Auth:DevelopmentTenant"] = "client-hooks-" + Guid.NewGuid().ToString("N")[..8],
            ["Serving:Security:AllowPrivateNetworks"] = "true",
            ["Serving:Hangfire:RunServer"] = "true",
            ["Serving:Webhooks:RunRelay"] = "true",
        });
        using var client = Client(api);
        var secret = await client.GetWebhookSecretAsync();
        var url = new Uri(receiver.NewUrl());

        var job = await client.RunAsync(new SubmitRequest
        {
            Pipeline = "image.embed",
            Model = "resnet18",
            Input = JobInput.FromBytes(TestImages.Scene(91, 160, 120), "a.jpg"),
            Webhook = new WebhookSubscription(url),
        }, Wait);
        var hook = Assert.Single(await receiver.WaitForAsync(url.ToString(), 1, Wait));
        var headers = new Dictionary<string, string>
        {
            ["webhook-id"] = hook.Id,
            ["webhook-timestamp"] = hook.Timestamp,
            ["webhook-signature"] = hook.Signature,
        };

        var verified = ServingWebhooks.Verify(secret, headers, hook.Body);
        Assert.Equal("job.completed", verified.Type);
        Assert.Equal(hook.Id, verified.Id);
        Assert.Equal(job.Id, verified.Data!.Id);
        Assert.Equal(JobStatuses.Succeeded, verified.Data.Status);
        Assert.Equal(url, verified.Data.Webhook!.Url);
        Assert.Equal(512, Assert.IsType<ImageEmbedOutput>(verified.Data.Output).Dims);

        var tampered = hook.Body.Replace("\"succeeded\"", "\"failed\"", StringComparison.Ordinal);
        Assert.NotEqual(hook.Body, tampered);
        Assert.Throws<WebhookVerificationException>(() => ServingWebhooks.Verify(secret, headers, tampered));
        Assert.Throws<WebhookVerificationException>(() => ServingWebhooks.Verify(secret, new Dictionary<string, string>(headers) { ["webhook-id"] = "msg_other" }, hook.Body));
        var stale = new Dictionary<string, string>(headers) { ["webhook-timestamp"] = DateTimeOffset.UtcNow.AddHours(-1).ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture) };
        Assert.Throws<WebhookVerificationException>(() => ServingWebhooks.Verify(secret, stale, hook.Body));
        var otherSecret = "whsec_" + Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        Assert.Throws<WebhookVerificationException>(() => ServingWebhooks.Verify(otherSecret, headers, hook.Body));

        // The delivery is on record, and a test event to the same receiver verifies too.
        var deadline = DateTime.UtcNow + Wait;
        DeliveryPage deliveries;
        while ((deliveries = await client.ListDeliveriesAsync(new DeliveryQuery(JobId: job.Id))).Data.Count == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100); // the attempt is recorded right after the receiver's answer
        }

        var delivery = Assert.Single(deliveries.Data);
        Assert.Equal(("delivered", hook.Id), (delivery.Status, delivery.MessageId));
        var testUrl = new Uri(receiver.NewUrl());
        var sent = await client.SendTestWebhookAsync(testUrl);
        var test = Assert.Single(await receiver.WaitForAsync(testUrl.ToString(), 1, Wait));
        var testEvent = ServingWebhooks.Verify(secret, new Dictionary<string, string>
        {
            ["Webhook-Id"] = test.Id,
            ["Webhook-Timestamp"] = test.Timestamp,
            ["Webhook-Signature"] = test.Signature,
        }, test.Body);
        Assert.Equal(("webhook.test", sent.MessageId), (testEvent.Type, testEvent.Id));
        Assert.Null(testEvent.Data);
        Assert.Equal(testUrl.AbsoluteUri, testEvent.RawData.GetProperty("url").GetString());
    }

    private static async Task<List<T>> ToListAsync<T>(IAsyncEnumerable<T> items)
    {
        using var timeout = new CancellationTokenSource(Wait);
        var list = new List<T>();
        await foreach (var item in items.WithCancellation(timeout.Token))
        {
            list.Add(item);
        }

        return list;
    }

    /// <summary>
    /// Cuts the first event stream just after its first <c>progress</c> event, as a dropped connection
    /// would (the next read fails); records each events request's <c>Last-Event-ID</c>.
    /// </summary>
    private sealed class CutAfterFirstProgress : DelegatingHandler
    {
        public List<string?> Requests { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            if (!request.RequestUri!.AbsolutePath.EndsWith("/events", StringComparison.Ordinal))
            {
                return response;
            }

            lock (Requests)
            {
                Requests.Add(request.Headers.TryGetValues("Last-Event-ID", out var values) ? values.Single() : null);
                if (Requests.Count > 1)
                {
                    return response;
                }
            }

            var content = new StreamContent(new CuttingStream(await response.Content.ReadAsStreamAsync(cancellationToken)));
            foreach (var header in response.Content.Headers)
            {
                content.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            response.Content = content;
            return response;
        }
    }

    private sealed class CuttingStream(Stream inner) : Stream
    {
        private readonly List<byte> _seen = [];
        private bool _cut;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_cut)
            {
                throw new IOException("The connection was reset (cut by the test).");
            }

            var read = await inner.ReadAsync(buffer, cancellationToken);
            var before = _seen.Count;
            _seen.AddRange(buffer.Span[..read].ToArray());
            var text = Encoding.Latin1.GetString([.. _seen]);
            var progress = text.IndexOf("event: progress", StringComparison.Ordinal);
            var end = progress < 0 ? -1 : text.IndexOf("\n\n", progress, StringComparison.Ordinal);
            if (end < 0)
            {
                return read;
            }

            _cut = true;
            return end + 2 - before;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
