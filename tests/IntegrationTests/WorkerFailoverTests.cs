using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// A real worker process is killed (SIGKILL) while it holds unacknowledged, running jobs; a second
/// worker process on the same model queue gets them redelivered, and every job ends succeeded,
/// each completed once. The model gets its own name here, so no other worker takes its jobs.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class WorkerFailoverTests(ServingFixture serving) : IDisposable
{
    private readonly PrivateModels _models = new(video: true);
    private readonly List<Process> _workers = [];

    public void Dispose()
    {
        foreach (var worker in _workers)
        {
            if (!worker.HasExited)
            {
                worker.Kill(entireProcessTree: true);
                worker.WaitForExit(10_000);
            }

            worker.Dispose();
        }

        _models.Dispose();
    }

    [Fact]
    public async Task Killing_a_worker_mid_batch_loses_no_job_and_runs_none_twice()
    {
        var name = _models.Name;
        var doomed = StartWorker();
        await WaitForReadyAsync(doomed);

        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = _models.Path });
        using var client = serving.Client(api);
        // Enough work that the worker is far from done when it dies: 120 jobs, submitted at once.
        var image = Convert.ToBase64String(TestImages.Scene(100, 320, 240));
        using var gate = new SemaphoreSlim(16);
        var ids = (await Task.WhenAll(Enumerable.Range(0, 120).Select(async _ =>
        {
            await gate.WaitAsync();
            try
            {
                var response = await client.PostAsJsonAsync("/v1/jobs", new { pipeline = "image.embed", model = name, input = new { base64 = image } });
                await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
                return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            }
            finally
            {
                gate.Release();
            }
        }))).ToList();

        // Kill as soon as work is under way: the worker then holds a full prefetch of started, unacked jobs.
        await WaitUntilAsync(async () => (await Task.WhenAll(ids.Select(id => client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}"))))
            .Any(job => job.GetProperty("status").GetString() == "succeeded"));
        doomed.Kill(entireProcessTree: true);
        await doomed.WaitForExitAsync();
        var survivor = StartWorker();
        await WaitForReadyAsync(survivor);

        var jobs = await Task.WhenAll(ids.Select(id => ServingFixture.WaitForTerminalAsync(client, id)));
        Assert.All(jobs.Select(job => job.GetProperty("status").GetString()), status => Assert.Equal("succeeded", status));
        Assert.All(jobs.Select(job => job.GetProperty("attempts").GetInt32()), attempts => Assert.InRange(attempts, 1, 2));
        var redelivered = jobs.Count(job => job.GetProperty("attempts").GetInt32() == 2);
        Assert.True(redelivered > 0, "no job was redelivered: the killed worker held none");
    }

    [Fact]
    public async Task A_worker_killed_mid_video_leaves_no_partial_result_and_the_redelivery_starts_over()
    {
        var doomed = StartWorker();
        await WaitForReadyAsync(doomed);
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = _models.Path });
        using var client = serving.Client(api);
        // 40 s at 10 fps: 400 frames, several seconds of work on 2 cores.
        var video = await TestVideos.ShotsAsync([(81, 20.0), (82, 20.0)], width: 320, height: 240);
        var response = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "video.analyze",
            model = _models.VideoName,
            input = new { base64 = Convert.ToBase64String(video) },
            @params = new { sample_fps = 10 },
        });
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

        JsonElement job = default;
        await WaitUntilAsync(async () =>
        {
            job = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
            return job.GetProperty("progress").GetDouble() >= 0.2;
        });

        // A crash, not a shutdown: the worker alone dies; its ffmpeg child is left to notice the closed pipe.
        doomed.Kill(entireProcessTree: false);
        await doomed.WaitForExitAsync();
        job = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
        Assert.Equal("running", job.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, job.GetProperty("output").ValueKind);
        var orphanDir = Path.Combine(Path.GetTempPath(), "async-serving-video", doomed.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(Directory.Exists(orphanDir));

        // The orphaned ffmpeg ends on its own: its next write goes to a pipe nobody reads.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (TestVideos.FfmpegRunningFor(id) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.False(TestVideos.FfmpegRunningFor(id), "the dead worker's ffmpeg is still running");

        var survivor = StartWorker();
        await WaitForReadyAsync(survivor);
        Assert.False(Directory.Exists(orphanDir), "the new worker should remove the dead worker's video folder");
        await WaitUntilAsync(async () =>
        {
            job = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
            return job.GetProperty("attempts").GetInt32() == 2;
        });
        Assert.True(job.GetProperty("progress").GetDouble() < 0.2 || job.GetProperty("status").GetString() == "succeeded");

        job = await ServingFixture.WaitForTerminalAsync(client, id);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal(2, job.GetProperty("attempts").GetInt32());
        var output = job.GetProperty("output");
        Assert.InRange(output.GetProperty("frames_analyzed").GetInt32(), 399, 401); // every frame, not the rest of them
        Assert.Equal(2, output.GetProperty("shots").GetArrayLength());
    }

    private Process StartWorker(int metricsPort = 0, Dictionary<string, string>? environment = null)
    {
        var bin = Path.GetDirectoryName(typeof(ServingFixture).Assembly.Location)!;
        var configuration = bin.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        var workerBin = Path.Combine(ServingFixture.RepoRoot, "src", "Worker", "bin", configuration, "net10.0");
        var start = new ProcessStartInfo("dotnet", [Path.Combine(workerBin, "Async.Serving.Worker.dll")])
        {
            WorkingDirectory = workerBin,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DOTNET_ENVIRONMENT"] = "Testing";
        start.Environment["Serving__Models__Path"] = _models.Path;
        start.Environment["Serving__Worker__MetricsPort"] = metricsPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["Serving__Worker__IntraOpThreads"] = "1";
        foreach (var (key, value) in environment ?? [])
        {
            start.Environment[key] = value;
        }

        var worker = Process.Start(start)!;
        _workers.Add(worker);
        return worker;
    }

    [Fact]
    public async Task A_worker_is_alive_while_its_models_load_and_ready_once_they_are_warm_and_its_bus_is_up()
    {
        var port = ScriptRunner.FreePort();
        var worker = StartWorker(port);
        Drain(worker);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };

        var ready = await ReadinessAsync(http, report => report.StatusCode == HttpStatusCode.OK);
        var checks = ready.Body.GetProperty("checks");
        Assert.Equal("healthy", ready.Body.GetProperty("status").GetString());
        Assert.Contains(_models.Name + "@1", checks.GetProperty("models").GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Equal("healthy", checks.GetProperty("masstransit-bus").GetProperty("status").GetString());
        Assert.Equal("healthy", checks.GetProperty("redis").GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        Assert.Contains($"serving_batch_size_count{{model=\"{_models.Name}@1\"}}", await http.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_worker_that_cannot_reach_its_broker_is_alive_but_not_ready()
    {
        var port = ScriptRunner.FreePort();
        var worker = StartWorker(port, new() { ["Serving__RabbitMq__Port"] = "1" });
        Drain(worker);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };

        // Once the models are warm, only the bus holds readiness back.
        var report = await ReadinessAsync(http, r => r.Body.GetProperty("checks").GetProperty("models").GetProperty("status").GetString() == "healthy");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, report.StatusCode);
        Assert.Equal("unhealthy", report.Body.GetProperty("checks").GetProperty("masstransit-bus").GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        Assert.False(worker.HasExited);
    }

    /// <summary>Polls <c>/readyz</c> (the port may not listen yet) until a report satisfies <paramref name="done"/>.</summary>
    private static async Task<(HttpStatusCode StatusCode, JsonElement Body)> ReadinessAsync(HttpClient http, Func<(HttpStatusCode StatusCode, JsonElement Body), bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (true)
        {
            Assert.True(DateTime.UtcNow < deadline, "no such readiness report in time");
            try
            {
                using var response = await http.GetAsync("/readyz");
                var report = (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement);
                if (done(report))
                {
                    return report;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }

            await Task.Delay(100);
        }
    }

    /// <summary>Reads the worker's output away, so it never blocks on a full pipe.</summary>
    private static void Drain(Process worker)
    {
        _ = worker.StandardOutput.ReadToEndAsync();
        _ = worker.StandardError.ReadToEndAsync();
    }

    private static async Task WaitForReadyAsync(Process worker)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (await worker.StandardOutput.ReadLineAsync().WaitAsync(deadline - DateTime.UtcNow) is { } line)
        {
            if (line.Contains("Worker ready", StringComparison.Ordinal))
            {
                Drain(worker); // so the worker never blocks on a full pipe
                return;
            }
        }

        Assert.Fail($"worker exited before it was ready: {await worker.StandardError.ReadToEndAsync()}");
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + ServingFixture.JobWait;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in time");
            await Task.Delay(20);
        }
    }
}
