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
    private readonly PrivateModels _models = new();
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
                Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
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

    private Process StartWorker()
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
        start.Environment["Serving__Worker__MetricsPort"] = "0";
        start.Environment["Serving__Worker__IntraOpThreads"] = "1";
        var worker = Process.Start(start)!;
        _workers.Add(worker);
        return worker;
    }

    private static async Task WaitForReadyAsync(Process worker)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (await worker.StandardOutput.ReadLineAsync().WaitAsync(deadline - DateTime.UtcNow) is { } line)
        {
            if (line.Contains("Worker ready", StringComparison.Ordinal))
            {
                // Keep draining its output, so the worker never blocks on a full pipe.
                _ = worker.StandardOutput.ReadToEndAsync();
                _ = worker.StandardError.ReadToEndAsync();
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
