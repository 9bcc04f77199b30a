using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Async.Serving.Breakers;
using Async.Serving.Worker.Embedding;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The circuit breaker per model version, end to end: a worker of this build serves a private copy of
/// resnet18 whose ONNX Runtime runs are made to fail (the terminate flag of its run options: a real
/// <c>OnnxRuntimeException</c> from <c>Run</c> on every batch), and API hosts read the breaker from Redis.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class ModelBreakerTests(ServingFixture serving) : IAsyncLifetime
{
    private static readonly TimeSpan Wait = ServingFixture.JobWait;

    private static readonly Dictionary<string, string?> Breaker = new()
    {
        ["Serving:ModelBreaker:FailureThreshold"] = "2",
        ["Serving:ModelBreaker:CoolDown"] = "00:00:15",
    };

    private readonly PrivateWorker _worker = new(overrides: Breaker);

    private string ModelId => _worker.Models.Name + "@1";

    public Task InitializeAsync() => _worker.StartAsync();

    public async Task DisposeAsync() => await _worker.DisposeAsync();

    private WebApplicationFactory<Program> Api(bool breakerChecks = true) => serving.CreateApi(new Dictionary<string, string?>(Breaker)
    {
        ["Serving:Models:Path"] = _worker.Models.Path,
        ["Serving:ModelBreaker:Enabled"] = breakerChecks ? "true" : "false",
    });

    private Task<HttpResponseMessage> SubmitAsync(HttpClient client, int seed) => client.PostAsJsonAsync("/v1/jobs", new
    {
        pipeline = "image.embed",
        model = ModelId,
        input = new { base64 = Convert.ToBase64String(TestImages.Scene(seed, 160, 120)) },
    });

    /// <summary>Submits a job and waits for its end; returns the finished job.</summary>
    private async Task<JsonElement> RunAsync(HttpClient client, int seed)
    {
        var response = await SubmitAsync(client, seed);
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        return await ServingFixture.WaitForTerminalAsync(client, id);
    }

    private static string? ErrorCode(JsonElement job) =>
        job.GetProperty("error").ValueKind == JsonValueKind.Object ? job.GetProperty("error").GetProperty("code").GetString() : null;

    private async Task<JsonElement> ModelResourceAsync(HttpClient client) =>
        (await client.GetFromJsonAsync<JsonElement>("/v1/models")).GetProperty("data").EnumerateArray().Single(m => m.GetProperty("id").GetString() == ModelId);

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what} within {Wait.TotalSeconds} s");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task A_model_failing_every_batch_is_marked_unavailable_refuses_submits_fails_its_jobs_fast_and_is_tried_again_after_the_cool_down()
    {
        await using var api = Api();
        await using var blind = Api(breakerChecks: false); // an API that does not look at the breaker: its jobs reach the worker
        using var client = serving.Client(api);
        using var direct = serving.Client(blind);
        var breakers = api.Services.GetRequiredService<ModelBreakers>();
        var model = _worker.Services.GetRequiredService<ImageEmbedPipeline>().Get(ModelId)!;

        Assert.Equal("succeeded", (await RunAsync(client, 401)).GetProperty("status").GetString());
        var healthy = await ModelResourceAsync(client);
        Assert.Equal("closed", healthy.GetProperty("state").GetString());
        Assert.True(healthy.GetProperty("available").GetBoolean());
        // What a worker reads alongside a job's start: every breaker the job needs closed (a model never seen has none).
        Assert.True(await breakers.ReadAhead([ModelId, "never-seen@1"]).AllClosedAsync());

        // Every run fails: two failed batches in a row open the breaker.
        model.TerminateRuns(true);
        Assert.Equal("inference_failed", ErrorCode(await RunAsync(client, 402)));
        Assert.Equal("inference_failed", ErrorCode(await RunAsync(client, 403)));
        await EventuallyAsync(async () => (await breakers.GetAsync(ModelId, CancellationToken.None)).State == BreakerState.Open, "the breaker open");

        // Submits for that version are refused: 503 model_unavailable with Retry-After, no job.
        var refused = await SubmitAsync(client, 404);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        var problem = await refused.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("model_unavailable", problem.GetProperty("code").GetString());
        Assert.Contains(ModelId, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.InRange(refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 15);
        Assert.True(await breakers.IsOpenAsync(ModelId, CancellationToken.None));
        Assert.False(await breakers.ReadAhead(["never-seen@1", ModelId]).AllClosedAsync());
        var open = await ModelResourceAsync(client);
        Assert.Equal("open", open.GetProperty("state").GetString());
        Assert.False(open.GetProperty("available").GetBoolean());
        using (var management = ServingFixture.ManagementClient(api))
        {
            Assert.Contains($"serving_model_breaker_state{{model=\"{ModelId}\"}} 2", await management.GetStringAsync("/metrics"), StringComparison.Ordinal);
        }

        // A job that reaches the worker anyway fails at once, without running: model_unavailable.
        var fast = await RunAsync(direct, 405);
        Assert.Equal("failed", fast.GetProperty("status").GetString());
        Assert.Equal("model_unavailable", ErrorCode(fast));
        Assert.Contains(ModelId, fast.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);

        // The model works again; after the cool-down the next job is the probe, and its success closes the breaker.
        model.TerminateRuns(false);
        await EventuallyAsync(async () => !await breakers.IsOpenAsync(ModelId, CancellationToken.None), "the cool-down over");
        Assert.Equal("succeeded", (await RunAsync(client, 406)).GetProperty("status").GetString());
        await EventuallyAsync(async () => (await breakers.GetAsync(ModelId, CancellationToken.None)).State == BreakerState.Closed, "the breaker closed");
        var closed = await ModelResourceAsync(client);
        Assert.Equal("closed", closed.GetProperty("state").GetString());
        Assert.True(closed.GetProperty("available").GetBoolean());
        Assert.True(await breakers.ReadAhead([ModelId]).AllClosedAsync());
        Assert.Equal("succeeded", (await RunAsync(client, 407)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task The_dashboard_lists_an_unavailable_model_and_close_now_makes_it_take_jobs_again()
    {
        await using var api = Api();
        using var client = serving.Client(api);
        var model = _worker.Services.GetRequiredService<ImageEmbedPipeline>().Get(ModelId)!;
        model.TerminateRuns(true);
        try
        {
            Assert.Equal("inference_failed", ErrorCode(await RunAsync(client, 410)));
            Assert.Equal("inference_failed", ErrorCode(await RunAsync(client, 411)));
        }
        finally
        {
            model.TerminateRuns(false);
        }

        var breakers = api.Services.GetRequiredService<ModelBreakers>();
        await EventuallyAsync(async () => (await breakers.GetAsync(ModelId, CancellationToken.None)).State == BreakerState.Open, "the breaker open");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await SubmitAsync(client, 412)).StatusCode);

        using var dashboard = await DashboardTests.SignInAsync(api, serving.DashboardPassword);
        var page = await dashboard.GetStringAsync("/hangfire/inference");
        var table = page.Split("id=\"model-breakers\"")[1].Split("</table>")[0];
        Assert.Contains(ModelId, table, StringComparison.Ordinal);
        Assert.Contains("OnnxRuntimeException", table, StringComparison.Ordinal);
        var closed = await DashboardManagementTests.SubmitAsync(dashboard, "/hangfire/inference", "/hangfire/inference/models/close", ("model", ModelId));
        Assert.Contains("takes jobs again", DashboardManagementTests.Outcome(closed), StringComparison.Ordinal);

        Assert.False(await breakers.IsOpenAsync(ModelId, CancellationToken.None));
        Assert.Equal("succeeded", (await RunAsync(client, 413)).GetProperty("status").GetString());
        Assert.DoesNotContain(ModelId, (await dashboard.GetStringAsync("/hangfire/inference")).Split("id=\"inference-jobs\"")[0], StringComparison.Ordinal);
    }
}
