using System.Collections.Concurrent;
using System.Globalization;
using Async.Serving.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Async.Serving.UnitTests;

/// <summary>
/// The client library's HTTP behaviour against a local Kestrel stub that answers as told: retries
/// honour Retry-After, a submit always carries one Idempotency-Key across its retries, calls that
/// would act twice are not retried, and long-polls and event streams outlast the standard
/// resilience pipeline's default timeouts.
/// </summary>
public sealed class ClientTests
{
    private static readonly TimeSpan TestWait = TimeSpan.FromSeconds(60);

    private const string JobJson = """{"id":"job1","status":"queued","pipeline":"image.embed","model":"resnet18@1","created_at":"2026-01-01T00:00:00Z","progress":0,"attempts":0}""";
    private const string DoneJson = """{"id":"job1","status":"succeeded","pipeline":"image.embed","model":"resnet18@1","created_at":"2026-01-01T00:00:00Z","progress":1,"attempts":1,"output":{"pipeline":"image.embed","embedding":[0.6,0.8],"dims":2}}""";

    private static ServingClient Client(ApiStub stub, int maxRetries = 3) => ServingClient.Create(new ServingClientOptions
    {
        BaseAddress = stub.BaseAddress,
        ApiKey = "sk_test_stub",
        MaxRetries = maxRetries,
        // Far longer than any test waits: a retry that comes at all came at the Retry-After's time.
        RetryDelay = TimeSpan.FromMinutes(10),
    });

    private static SubmitRequest Request(string? key = null) => new()
    {
        Pipeline = "image.embed",
        Model = "resnet18",
        Input = JobInput.FromBytes(new byte[] { 0xFF, 0xD8, 0xFF }, "a.jpg"),
        IdempotencyKey = key,
    };

    [Theory]
    [InlineData(503, "queue_full")]
    [InlineData(429, "rate_limited")]
    public async Task A_refused_submit_is_retried_after_its_Retry_After_with_the_same_idempotency_key(int status, string code)
    {
        await using var stub = await ApiStub.StartAsync();
        stub.Answers.Enqueue(Problem(status, code, retryAfter: 1));
        stub.Answers.Enqueue(Json(202, JobJson));
        using var client = Client(stub);
        using var timeout = new CancellationTokenSource(TestWait);

        var job = await client.SubmitAsync(Request(), timeout.Token);

        Assert.Equal("job1", job.Id);
        Assert.Equal(2, stub.Requests.Count);
        var keys = stub.Requests.Select(r => r.IdempotencyKey).ToList();
        Assert.False(string.IsNullOrEmpty(keys[0]));
        Assert.Equal(keys[0], keys[1]);
        Assert.All(stub.Requests, r => Assert.Equal("Bearer sk_test_stub", r.Authorization));
        Assert.All(stub.Requests, r => Assert.StartsWith("multipart/form-data", r.ContentType, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Each_submit_gets_a_key_of_its_own_and_a_given_key_is_sent_as_given()
    {
        await using var stub = await ApiStub.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            stub.Answers.Enqueue(Json(202, JobJson));
        }

        using var client = Client(stub);
        await client.SubmitAsync(Request());
        await client.SubmitAsync(Request());
        await client.SubmitAsync(Request("my key 1"));

        var keys = stub.Requests.Select(r => r.IdempotencyKey).ToList();
        Assert.NotEqual(keys[0], keys[1]);
        Assert.Equal("my key 1", keys[2]);
    }

    [Fact]
    public async Task A_batch_carries_an_idempotency_key_and_a_file_is_retried_with_it_while_items_are_not()
    {
        const string batchJson = """{"id":"batch_1","status":"validating","total":1,"counts":{"pending":1,"queued":0,"running":0,"succeeded":0,"failed":0,"cancelled":0,"expired":0,"errored":0},"progress":0,"created_at":"2026-01-01T00:00:00Z"}""";
        await using var stub = await ApiStub.StartAsync();
        stub.Answers.Enqueue(Problem(503, "broker_unavailable", retryAfter: 1));
        stub.Answers.Enqueue(Json(202, batchJson));
        stub.Answers.Enqueue(Problem(503, "broker_unavailable", retryAfter: 1));
        stub.Answers.Enqueue(Json(202, batchJson));
        using var client = Client(stub);
        using var timeout = new CancellationTokenSource(TestWait);

        // A file (a stream that seeks): sent again from its start, with the same key.
        Assert.Equal("batch_1", (await client.SubmitBatchAsync(new MemoryStream("""{"custom_id":"a"}"""u8.ToArray()), cancellationToken: timeout.Token)).Id);
        // Items are not replayed: the 503 comes back.
        var refused = await Assert.ThrowsAsync<ServingApiException>(() => client.SubmitBatchAsync(
            [new BatchItem { CustomId = "a", Pipeline = "image.embed", Input = JobInput.FromBytes(new byte[] { 0xFF, 0xD8, 0xFF }, "a.jpg") }],
            cancellationToken: timeout.Token));
        await client.SubmitBatchAsync(new MemoryStream("""{"custom_id":"a"}"""u8.ToArray()), new BatchSubmitOptions { IdempotencyKey = "nightly 2026-12-02" }, timeout.Token);

        Assert.Equal((503, "broker_unavailable"), (refused.Status, refused.Code));
        Assert.All(stub.Requests, r => Assert.Equal("/v1/batches", r.PathAndQuery));
        var keys = stub.Requests.Select(r => r.IdempotencyKey).ToList();
        Assert.Equal(4, keys.Count);
        Assert.All(keys, k => Assert.False(string.IsNullOrEmpty(k)));
        Assert.Equal(keys[0], keys[1]);
        Assert.NotEqual(keys[0], keys[2]);
        Assert.Equal("nightly 2026-12-02", keys[3]);
    }

    [Fact]
    public async Task A_busy_idempotency_key_is_retried_and_a_plain_conflict_is_not()
    {
        await using var stub = await ApiStub.StartAsync();
        stub.Answers.Enqueue(Problem(409, "conflict", retryAfter: 1));
        stub.Answers.Enqueue(Json(202, JobJson));
        stub.Answers.Enqueue(Problem(409, "conflict", retryAfter: null));
        using var client = Client(stub);

        Assert.Equal("job1", (await client.SubmitAsync(Request())).Id);
        var conflict = await Assert.ThrowsAsync<ServingApiException>(() => client.CancelAsync("job1"));

        Assert.Equal(3, stub.Requests.Count);
        Assert.Equal((409, "conflict"), (conflict.Status, conflict.Code));
    }

    [Fact]
    public async Task A_call_that_would_act_twice_is_retried_after_a_429_but_not_after_a_503()
    {
        await using var stub = await ApiStub.StartAsync();
        stub.Answers.Enqueue(Problem(429, "rate_limited", retryAfter: 1));
        stub.Answers.Enqueue(Json(201, """{"id":"k1","key":"sk_live_x","name":"ci","prefix":"sk_live_x","admin":false,"created_at":"2026-01-01T00:00:00Z"}"""));
        stub.Answers.Enqueue(Problem(503, "store_unavailable", retryAfter: 1));
        using var client = Client(stub);

        var created = await client.CreateKeyAsync("ci");
        var refused = await Assert.ThrowsAsync<ServingApiException>(() => client.CreateKeyAsync("ci"));

        Assert.Equal("sk_live_x", created.Key);
        Assert.Equal((503, "store_unavailable"), (refused.Status, refused.Code));
        Assert.Equal(TimeSpan.FromSeconds(1), refused.RetryAfter);
        Assert.Equal(3, stub.Requests.Count);
    }

    [Fact]
    public async Task Without_retries_the_problem_comes_back_with_its_fields()
    {
        await using var stub = await ApiStub.StartAsync();
        stub.Answers.Enqueue(Problem(503, "queue_full", retryAfter: 30));
        stub.Answers.Enqueue(new Answer(502, "text/html", "<html>bad gateway</html>", null));
        using var client = Client(stub, maxRetries: 0);

        var full = await Assert.ThrowsAsync<ServingApiException>(() => client.SubmitAsync(Request()));
        var gateway = await Assert.ThrowsAsync<ServingApiException>(() => client.GetAsync("job1"));

        Assert.Equal((503, "queue_full", "The queue is full.", TimeSpan.FromSeconds(30)), (full.Status, full.Code, full.Title, full.RetryAfter));
        Assert.Equal("Detail of queue_full.", full.Detail);
        Assert.Contains("queue_full", full.Message, StringComparison.Ordinal);
        Assert.Equal((502, "http_502"), (gateway.Status, gateway.Code));
        Assert.Equal(2, stub.Requests.Count);
    }

    [Fact]
    public async Task Long_polls_and_event_streams_outlast_the_standard_pipelines_default_timeouts()
    {
        // The standard pipeline cuts an attempt at 10 s by default: both answers here take longer.
        var slow = TimeSpan.FromSeconds(11);
        await using var stub = await ApiStub.StartAsync();
        stub.Answers.Enqueue(new Answer(200, "application/json", DoneJson, null) { Delay = slow });
        stub.Answers.Enqueue(new Answer(200, "text/event-stream", null, null)
        {
            Events = [("1.0.0", "status", JobJson), ("1.2.1000", "completed", DoneJson)],
            Delay = slow,
        });
        using var client = Client(stub);
        using var timeout = new CancellationTokenSource(TestWait);

        var waited = await client.WaitAsync("job1", TimeSpan.FromSeconds(30), timeout.Token);
        var events = new List<JobEvent>();
        await foreach (var e in client.EventsAsync("job1", cancellationToken: timeout.Token))
        {
            events.Add(e);
        }

        Assert.Equal(JobStatuses.Succeeded, waited.Status);
        Assert.Equal([0.6f, 0.8f], Assert.IsType<Async.Serving.Contracts.Outputs.ImageEmbedOutput>(waited.Output).Embedding);
        Assert.Equal("/v1/jobs/job1?wait=30", stub.Requests[0].PathAndQuery);
        Assert.Equal(["1.0.0", "1.2.1000"], events.Select(e => e.Id));
        Assert.Equal(["status", "completed"], events.Select(e => e.Type));
        Assert.Equal(2, stub.Requests.Count);
    }

    [Fact]
    public async Task An_output_of_an_unknown_pipeline_is_null_and_the_job_still_reads()
    {
        await using var stub = await ApiStub.StartAsync();
        stub.Answers.Enqueue(Json(200, DoneJson.Replace("\"pipeline\":\"image.embed\",\"embedding\"", "\"pipeline\":\"audio.new\",\"embedding\"", StringComparison.Ordinal)));
        using var client = Client(stub);

        var job = await client.GetAsync("job1");

        Assert.Equal(JobStatuses.Succeeded, job.Status);
        Assert.Null(job.Output);
    }

    [Fact]
    public void Options_are_checked_before_a_client_is_made()
    {
        var missing = Assert.Throws<OptionsValidationException>(() => ServingClient.Create(new ServingClientOptions()));
        Assert.Contains(missing.Failures, f => f.Contains("BaseAddress", StringComparison.Ordinal));
        Assert.Contains(missing.Failures, f => f.Contains("ApiKey", StringComparison.Ordinal));

        var services = new ServiceCollection();
        services.AddServingClient(o => o.BaseAddress = new Uri("/relative", UriKind.Relative));
        using var provider = services.BuildServiceProvider();
        Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<ServingClient>());
    }

    private static Answer Json(int status, string body) => new(status, "application/json", body, null);

    private static Answer Problem(int status, string code, int? retryAfter) =>
        new(status, "application/problem+json",
            $$"""{"type":"https://async-serving.dev/problems/{{code}}","title":"The queue is full.","status":{{status}},"detail":"Detail of {{code}}.","code":"{{code}}"}""",
            retryAfter);

    private sealed record Answer(int Status, string ContentType, string? Body, int? RetryAfter)
    {
        public TimeSpan Delay { get; init; }

        public (string Id, string Type, string Data)[]? Events { get; init; }
    }

    private sealed record Seen(string PathAndQuery, string? IdempotencyKey, string? Authorization, string? ContentType);

    /// <summary>Kestrel on 127.0.0.1 answering each request with the next <see cref="Answers"/> entry.</summary>
    private sealed class ApiStub : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private ApiStub(WebApplication app) => _app = app;

        public ConcurrentQueue<Answer> Answers { get; } = new();

        public List<Seen> Requests { get; } = [];

        public Uri BaseAddress { get; private set; } = null!;

        public static async Task<ApiStub> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Testing" });
            builder.Logging.ClearProviders();
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
            var app = builder.Build();
            app.Urls.Add("http://127.0.0.1:0");
            var stub = new ApiStub(app);
            app.Run(stub.AnswerAsync);
            await app.StartAsync();
            stub.BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single());
            return stub;
        }

        private async Task AnswerAsync(HttpContext context)
        {
            var request = context.Request;
            lock (Requests)
            {
                Requests.Add(new Seen(request.Path + request.QueryString, request.Headers["Idempotency-Key"].FirstOrDefault(),
                    request.Headers.Authorization.FirstOrDefault(), request.ContentType));
            }

            await request.Body.CopyToAsync(Stream.Null, context.RequestAborted);
            if (!Answers.TryDequeue(out var answer))
            {
                context.Response.StatusCode = 500;
                return;
            }

            if (answer.Events is null)
            {
                await Task.Delay(answer.Delay, context.RequestAborted);
            }

            context.Response.StatusCode = answer.Status;
            context.Response.ContentType = answer.ContentType;
            if (answer.RetryAfter is { } seconds)
            {
                context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            }

            if (answer.Body is not null)
            {
                await context.Response.WriteAsync(answer.Body, context.RequestAborted);
            }

            var first = true;
            foreach (var (id, type, data) in answer.Events ?? [])
            {
                if (!first)
                {
                    // The gap between events is the long one: the stream is open, its headers long sent.
                    await Task.Delay(answer.Delay, context.RequestAborted);
                }

                first = false;
                await context.Response.WriteAsync($"event: {type}\ndata: {data}\nid: {id}\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
