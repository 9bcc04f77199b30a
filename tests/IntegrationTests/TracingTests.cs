using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Async.Serving.Api.Ledger;
using Async.Serving.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Trace;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// One trace from the submit to the webhook. The API host and a worker host of this build run in
/// this test process, against the real RabbitMQ, Redis and PostgreSQL; an in-memory exporter on the
/// API's tracer provider collects the spans. Since the hosts share a process, the test checks that
/// the trace crossed each boundary the way it does between processes, never through the
/// <c>Activity.Current</c> of this process: the consumer's span has a remote parent that is the
/// broker send's span (the context rode in the RabbitMQ message's headers); the outbox relay's and
/// each webhook attempt's spans have a remote parent read back from Redis and from the Hangfire job
/// (PostgreSQL), on loops that never saw the request; and the receiver got the trace in a
/// <c>traceparent</c> header.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class TracingTests(ServingFixture serving) : IAsyncLifetime
{
    private static readonly TimeSpan Wait = ServingFixture.JobWait;

    private readonly PrivateWorker _worker = new();

    private PrivateModels Models => _worker.Models;

    public Task InitializeAsync() => _worker.StartAsync();

    public async Task DisposeAsync() => await _worker.DisposeAsync();

    [Fact]
    public async Task One_trace_runs_from_the_submit_through_the_broker_batch_and_event_to_each_webhook_attempt()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Answers.Enqueue(500); // the first attempt fails: the retry is a second attempt span
        var spans = new SpanCollector();
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Auth:DevelopmentTenant"] = "traces-" + Guid.NewGuid().ToString("N")[..8],
            ["Serving:Models:Path"] = Models.Path,
            ["Serving:Security:AllowPrivateNetworks"] = "true",
            ["Serving:Hangfire:RunServer"] = "true",
            ["Serving:Webhooks:RunRelay"] = "true",
            ["Serving:Webhooks:RetryDelays:0"] = "00:00:01",
            ["Serving:Webhooks:Timeout"] = "00:00:05",
        }).WithWebHostBuilder(b => b.ConfigureTestServices(s => s.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(spans))));
        using var client = serving.Client(api);

        var url = receiver.NewUrl();
        var submitted = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "image.embed",
            model = Models.Name,
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(90, 320, 240)) },
            webhook = new { url },
        });
        await Problems.AssertStatusAsync(submitted, HttpStatusCode.Accepted);
        var ticket = await submitted.Content.ReadFromJsonAsync<JsonElement>();
        var id = ticket.GetProperty("id").GetString()!;
        var traceId = ticket.GetProperty("trace_id").GetString()!;
        Assert.Matches("^[0-9a-f]{32}$", traceId);
        Assert.NotEqual(new string('0', 32), traceId);

        var job = await ServingFixture.WaitForTerminalAsync(client, id);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal(traceId, job.GetProperty("trace_id").GetString());
        var hooks = await receiver.WaitForAsync(url, 2, Wait);
        Assert.Equal(traceId, JsonDocument.Parse(hooks[1].Body).RootElement.GetProperty("data").GetProperty("trace_id").GetString());

        // Both attempts end (and their spans are exported) after they record themselves.
        var trace = await spans.WaitForAsync(traceId, s => s.Count(a => a.OperationName == "webhook.attempt") >= 2, Wait);
        var tree = Describe(trace);
        Activity One(Func<Activity, bool> match, string what) =>
            trace.SingleOrDefault(match) ?? throw new Xunit.Sdk.XunitException($"no single span for {what} in:\n{tree}");

        // The API: the request is the root, the submit under it, the broker's send under the submit.
        var request = One(a => a.ParentSpanId == default, "the root");
        Assert.Equal(("Microsoft.AspNetCore", ActivityKind.Server), (request.Source.Name, request.Kind));
        Assert.Equal(("POST", "/v1/jobs"), (request.GetTagItem("http.request.method"), request.GetTagItem("url.path")));
        var submit = One(a => a.OperationName == "job.submit", "job.submit");
        Assert.Equal(request.SpanId, submit.ParentSpanId);
        Assert.Equal(id, submit.GetTagItem(ServingTelemetry.JobIdTag));
        var send = One(a => a.Source.Name == ServingTelemetry.MassTransitName && a.Kind == ActivityKind.Producer && a.ParentSpanId == submit.SpanId, "the broker send");

        // Through RabbitMQ: the worker's first span continues the send from the message's headers.
        var received = One(a => a.Source.Name == ServingTelemetry.MassTransitName && a.Kind == ActivityKind.Consumer && a.ParentSpanId == send.SpanId, "the receive");
        Assert.True(received.HasRemoteParent, "the receive's parent came from the message, not from this process");

        // The worker: inference under the consume span (under the receive), the batch linked to it, the result write beside it.
        var inference = One(a => a.OperationName == "job.inference", "job.inference");
        Assert.Equal(Models.Name + "@1", inference.GetTagItem(ServingTelemetry.ModelTag));
        Assert.Contains(received.SpanId, Ancestors(trace, inference).Select(a => a.SpanId));
        var batch = One(a => a.OperationName == "model.batch", "model.batch");
        Assert.Equal(inference.SpanId, batch.ParentSpanId); // the batch's oldest item: this job, alone on its private model
        Assert.Contains(batch.Links, l => l.Context.TraceId == inference.TraceId && l.Context.SpanId == inference.SpanId);
        Assert.Equal(1, batch.GetTagItem(ServingTelemetry.BatchSizeTag));
        var joined = Assert.Single(inference.Events, e => e.Name == "model.batch");
        Assert.Equal(batch.SpanId.ToHexString(), joined.Tags.Single(t => t.Key == "serving.batch.span_id").Value);
        var write = One(a => a.OperationName == "job.result.write", "job.result.write");
        Assert.Equal(inference.ParentSpanId, write.ParentSpanId);
        Assert.Equal("succeeded", write.GetTagItem(ServingTelemetry.OutcomeTag));
        Assert.True(write.StartTimeUtc >= inference.StartTimeUtc + inference.Duration);

        // The event: the API's relay continues the submit's span, read back from the job's record in Redis.
        var relay = One(a => a.OperationName == "job.event.relay", "job.event.relay");
        Assert.Equal(submit.SpanId, relay.ParentSpanId);
        Assert.True(relay.HasRemoteParent, "the relay's parent came from the job's record");
        Assert.Equal("job.completed", relay.GetTagItem(ServingTelemetry.EventTypeTag));

        // Each webhook attempt (Hangfire jobs, the second scheduled by the first) under the relay;
        // each request carried the trace to the receiver.
        var attempts = trace.Where(a => a.OperationName == "webhook.attempt").OrderBy(a => a.GetTagItem(ServingTelemetry.WebhookAttemptTag)).ToArray();
        Assert.Equal([1, 2], attempts.Select(a => (int)a.GetTagItem(ServingTelemetry.WebhookAttemptTag)!));
        Assert.Equal(["retrying", "delivered"], attempts.Select(a => (string)a.GetTagItem(ServingTelemetry.OutcomeTag)!));
        Assert.All(attempts, a => Assert.Equal(relay.SpanId, a.ParentSpanId));
        Assert.All(attempts, a => Assert.True(a.HasRemoteParent, "the attempt's parent came from the Hangfire job"));
        Assert.Equal(ActivityStatusCode.Error, attempts[0].Status);
        for (var i = 0; i < 2; i++)
        {
            var call = One(a => a.Source.Name == "System.Net.Http" && a.ParentSpanId == attempts[i].SpanId, $"the request of attempt {i + 1}");
            Assert.True(ActivityContext.TryParse(hooks[i].TraceParent, null, out var header), $"traceparent '{hooks[i].TraceParent}'");
            Assert.Equal((traceId, call.SpanId), (header.TraceId.ToHexString(), header.SpanId));
            Assert.True(header.TraceFlags.HasFlag(ActivityTraceFlags.Recorded));
        }

        // The ledger row names the trace, for the dashboard.
        var row = await LedgerTests.WaitForRowAsync(api, id, "succeeded");
        Assert.Equal(traceId, row.TraceId);
    }

    [Fact]
    public async Task Each_job_of_a_message_of_several_runs_in_its_own_trace()
    {
        var spans = new SpanCollector();
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = Models.Path })
            .WithWebHostBuilder(b => b.ConfigureTestServices(s => s.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(spans))));
        using var client = serving.Client(api);
        var store = api.Services.GetRequiredService<Async.Serving.Jobs.RedisJobStore>();

        // Two jobs, each stored with the traceparent of a submit of its own, sent together in one message.
        var jobs = new List<(string Id, ActivityTraceId Trace, ActivitySpanId Submit)>();
        for (var i = 0; i < 2; i++)
        {
            var (trace, submit) = (ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom());
            var job = new Async.Serving.Jobs.JobRecord
            {
                Id = Async.Serving.Jobs.RedisJobStore.NewJobId(), TenantId = serving.Tenant, Status = Async.Serving.Contracts.JobStatuses.Queued,
                Pipeline = "image.embed", Model = Models.Name + "@1", CreatedAt = DateTimeOffset.UtcNow, TraceParent = $"00-{trace}-{submit}-01",
            };
            await store.CreateAsync(job, TestImages.Scene(120 + i, 320, 240));
            jobs.Add((job.Id, trace, submit));
        }

        var model = api.Services.GetRequiredService<Async.Serving.Models.ModelRepository>().Resolve(Models.Name + "@1")!;
        await api.Services.GetRequiredService<Async.Serving.Api.Jobs.JobSender>().SendAsync(new Async.Serving.Contracts.RunInferenceBatch
        {
            Jobs = [.. jobs.Select(j => new Async.Serving.Contracts.RunInference
            {
                JobId = j.Id, TenantId = serving.Tenant, Pipeline = "image.embed", Model = Models.Name, ModelVersion = "1",
                InputKey = Async.Serving.Jobs.RedisJobStore.InputKey(j.Id).ToString(), SubmittedAt = DateTimeOffset.UtcNow,
                TraceParent = $"00-{j.Trace}-{j.Submit}-01",
            })],
        }, model.LaneQueue(Async.Serving.Contracts.JobPriorities.Normal));

        foreach (var (id, trace, submit) in jobs)
        {
            Assert.Equal("succeeded", (await ServingFixture.WaitForTerminalAsync(client, id)).GetProperty("status").GetString());
            var ofJob = await spans.WaitForAsync(trace.ToHexString(), s => s.Any(a => a.OperationName == "job.result.write"), Wait);
            var consume = Assert.Single(ofJob, a => a.OperationName == "job.consume");
            Assert.Equal((submit, ActivityKind.Consumer, id), (consume.ParentSpanId, consume.Kind, consume.GetTagItem(ServingTelemetry.JobIdTag)));
            Assert.True(consume.HasRemoteParent, "the job's span continues its submit, carried in the message");
            var inference = Assert.Single(ofJob, a => a.OperationName == "job.inference");
            Assert.Contains(consume.SpanId, Ancestors(ofJob, inference).Select(a => a.SpanId));
        }
    }

    [Fact]
    public async Task With_an_OTLP_endpoint_set_the_API_exports_the_jobs_trace_and_metrics_over_OTLP()
    {
        // A stand-in collector: records what arrives on the OTLP/HTTP paths.
        var received = new ConcurrentQueue<(string Path, string ContentType, byte[] Body)>();
        var collectorBuilder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Testing" });
        collectorBuilder.Logging.ClearProviders();
        await using var collector = collectorBuilder.Build();
        collector.Urls.Add("http://127.0.0.1:0");
        collector.MapPost("/v1/{signal}", async (HttpContext context) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            received.Enqueue((context.Request.Path, context.Request.ContentType ?? string.Empty, body.ToArray()));
            return Results.Ok();
        });
        await collector.StartAsync();
        var endpoint = collector.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();

        // Only the standard variables (as configuration: the host reads environment variables into it).
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Models:Path"] = Models.Path,
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_SERVICE_NAME"] = "serving-api-under-test",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "100",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "200",
        });
        using var client = serving.Client(api);
        var response = await client.PostAsJsonAsync("/v1/jobs?wait=30", new
        {
            pipeline = "image.embed",
            model = Models.Name,
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(91, 64, 64)) },
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var traceId = ActivityTraceId.CreateFromString((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("trace_id").GetString());
        var traceBytes = new byte[16];
        traceId.CopyTo(traceBytes);

        // OTLP protobuf holds a trace id as its 16 raw bytes, the resource's service name and the
        // instrumentation scopes as text. With export on, Redis commands are spans too.
        var deadline = DateTime.UtcNow + Wait;
        bool Traces(byte[] text) => received.Any(r => r.Path == "/v1/traces" && r.Body.AsSpan().IndexOf(text) >= 0);
        while (!(received.Any(r => r.Path == "/v1/traces" && r.Body.AsSpan().IndexOf(traceBytes) >= 0
                   && r.Body.AsSpan().IndexOf("serving-api-under-test"u8) >= 0)
                 && Traces("OpenTelemetry.Instrumentation.StackExchangeRedis"u8.ToArray())
                 && received.Any(r => r.Path == "/v1/metrics")))
        {
            Assert.True(DateTime.UtcNow < deadline, $"OTLP requests so far: {string.Join(", ", received.Select(r => r.Path))}");
            await Task.Delay(100);
        }

        Assert.All(received, r => Assert.Equal("application/x-protobuf", r.ContentType));
    }

    private static IEnumerable<Activity> Ancestors(IReadOnlyList<Activity> trace, Activity span)
    {
        for (var s = span; trace.FirstOrDefault(a => a.SpanId == s.ParentSpanId) is { } parent; s = parent)
        {
            yield return parent;
        }
    }

    private static string Describe(IReadOnlyList<Activity> trace)
    {
        var text = new StringBuilder();
        foreach (var a in trace.OrderBy(a => a.StartTimeUtc))
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture,
                $"{a.Source.Name} {a.Kind} '{a.DisplayName}' ({a.OperationName}) span {a.SpanId} parent {a.ParentSpanId} remote {a.HasRemoteParent}\n");
        }

        return text.ToString();
    }

    /// <summary>The in-memory exporter's target: appended to by the export threads, read by the test.</summary>
    private sealed class SpanCollector : ICollection<Activity>
    {
        private readonly List<Activity> _spans = [];

        public int Count
        {
            get
            {
                lock (_spans)
                {
                    return _spans.Count;
                }
            }
        }

        public bool IsReadOnly => false;

        public void Add(Activity item)
        {
            lock (_spans)
            {
                _spans.Add(item);
            }
        }

        /// <summary>The spans of <paramref name="traceId"/> once <paramref name="done"/> holds for them, waiting at most <paramref name="timeout"/>.</summary>
        public async Task<IReadOnlyList<Activity>> WaitForAsync(string traceId, Func<IReadOnlyList<Activity>, bool> done, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (true)
            {
                List<Activity> trace;
                lock (_spans)
                {
                    // One span per id: every host's tracer provider in this process sees every span.
                    trace = [.. _spans.Where(a => a.TraceId.ToHexString() == traceId).DistinctBy(a => a.SpanId)];
                }

                if (done(trace))
                {
                    return trace;
                }

                Assert.True(DateTime.UtcNow < deadline, $"trace {traceId} incomplete after {timeout.TotalSeconds} s:\n{Describe(trace)}");
                await Task.Delay(100);
            }
        }

        public void Clear()
        {
            lock (_spans)
            {
                _spans.Clear();
            }
        }

        public bool Contains(Activity item)
        {
            lock (_spans)
            {
                return _spans.Contains(item);
            }
        }

        public void CopyTo(Activity[] array, int arrayIndex)
        {
            lock (_spans)
            {
                _spans.CopyTo(array, arrayIndex);
            }
        }

        public bool Remove(Activity item)
        {
            lock (_spans)
            {
                return _spans.Remove(item);
            }
        }

        public IEnumerator<Activity> GetEnumerator()
        {
            lock (_spans)
            {
                return _spans.ToList().GetEnumerator();
            }
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
