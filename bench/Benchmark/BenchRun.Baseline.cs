using System.Globalization;
using System.Net.Http.Headers;
using System.Numerics.Tensors;
using System.Text.Json;
using Async.Serving.Contracts.Outputs;

namespace Async.Serving.Benchmark;

/// <summary>
/// One side of one level of the baseline comparison: throughput, latency percentiles (milliseconds, of
/// the requests that succeeded) and the CPU the system under test spent per image (its own processes:
/// the baseline's one process, or the API, the worker, RabbitMQ and Redis; not the load client).
/// </summary>
internal sealed record SideFigure(
    int Requests, int Succeeded, int Failed, double PerSecond, double P50Ms, double P95Ms, double P99Ms, double CpuMsPerImage, CpuSplit Cpu);

/// <summary>Both systems at one number of concurrent clients, measured one after the other in the same run.</summary>
internal sealed record BaselineLevel(int Clients, SideFigure Baseline, SideFigure Serving)
{
    /// <summary>Async.Serving's throughput over the baseline's.</summary>
    public double ThroughputRatio => Math.Round(Serving.PerSecond / Math.Max(0.001, Baseline.PerSecond), 3);
}

/// <summary>
/// The naive baseline (bench/Baseline) beside Async.Serving on the same images and model; the
/// embedding both return for the first image is compared as a check that they do the same work.
/// </summary>
internal sealed record BaselineFigure(
    string Model, int RequestsPerLevel, IReadOnlyList<BaselineLevel> Levels, double EmbeddingCosine, double EmbeddingMaxAbsDiff);

/// <summary>The naive baseline's one endpoint, <c>POST /v1/embed</c> with the image as the body.</summary>
internal sealed class BaselineClient(Uri baseAddress) : IDisposable
{
    private readonly HttpClient _http = new(new SocketsHttpHandler { MaxConnectionsPerServer = 256 })
    {
        BaseAddress = baseAddress,
        Timeout = TimeSpan.FromSeconds(120),
    };

    public async Task<bool> IsReadyAsync()
    {
        try
        {
            using var response = await _http.GetAsync(new Uri("/healthz", UriKind.Relative)).ConfigureAwait(false);
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    /// <summary>Null when the embedding came back, else the status code.</summary>
    public async Task<string?> EmbedAsync(byte[] image, string contentType)
    {
        using var content = new ByteArrayContent(image);
        content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        using var response = await _http.PostAsync(new Uri("/v1/embed", UriKind.Relative), content).ConfigureAwait(false);
        _ = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
        return response.IsSuccessStatusCode ? null : ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);
    }

    public async Task<float[]> EmbeddingAsync(byte[] image, string contentType)
    {
        using var content = new ByteArrayContent(image);
        content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        using var response = await _http.PostAsync(new Uri("/v1/embed", UriKind.Relative), content).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await response.Content.ReadAsStreamAsync().ConfigureAwait(false));
        return [.. json.RootElement.GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle())];
    }

    public void Dispose() => _http.Dispose();
}

internal sealed partial class BenchRun
{
    private static readonly int[] BaselineClients = [1, 8, 32];

    /// <summary>
    /// Step 10: the naive baseline (bench/Baseline, one process, one session, one image per run on the
    /// request's thread) and Async.Serving (the API and one worker of <c>bench-resnet18</c>, batching on)
    /// on the same JPEGs, each driven in a closed loop by 1, 8 and 32 clients; at each level the baseline
    /// runs first, then Async.Serving, so both meet the same machine. Async.Serving's latency is submit to
    /// result available at the client (<c>POST /v1/jobs?wait=60</c>, answered once the job finished).
    /// </summary>
    private async Task<BaselineFigure> BaselineAsync(IReadOnlyList<byte[]> photos)
    {
        var port = ServingProcess.FreePort();
        var env = new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}",
            ["Baseline__ModelsPath"] = _repository!,
            ["Baseline__Model"] = BenchRepository.ResNet,
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning",
        };
        var baseline = ServingProcess.Start("baseline", options.BaselineDll, env, Path.Combine(options.OutDir, "logs", "baseline.log"), readyLine: "Now listening on");
        _processes.Add(baseline);
        using var baselineClient = new BaselineClient(new Uri($"http://127.0.0.1:{port}"));
        await baseline.WaitReadyAsync(TimeSpan.FromSeconds(120)).ConfigureAwait(false);
        Console.WriteLine($"  baseline ready on port {port} (pid {baseline.Pid})");
        var (worker, _) = await StartWorkerAsync(BenchRepository.ResNet).ConfigureAwait(false);
        try
        {
            Task<string?> Baseline(int i) => baselineClient.EmbedAsync(photos[i % photos.Count], "image/jpeg");
            async Task<string?> Serving(int i)
            {
                var job = await _client!.RunAsync(BenchRepository.ResNet, photos[i % photos.Count], $"image{i}.jpg", "image/jpeg").ConfigureAwait(false);
                lock (_jobIds)
                {
                    _jobIds.Add(job.Id);
                }

                return job.Status == JobStatuses.Succeeded ? null : $"{job.Status}/{job.Error?.Code}";
            }

            // Warm-up of both paths (JIT, connections, ONNX Runtime's first runs at each shape).
            await ClosedLoop.RunAsync(32, 8, Baseline).ConfigureAwait(false);
            await ClosedLoop.RunAsync(96, 8, Serving).ConfigureAwait(false);

            var levels = new List<BaselineLevel>();
            foreach (var clients in BaselineClients)
            {
                var b = await SideAsync(clients, Baseline, new Dictionary<string, int[]> { ["baseline"] = [baseline.Pid], ["bench_client"] = [Environment.ProcessId] }).ConfigureAwait(false);
                var s = await SideAsync(clients, Serving, CpuGroups(worker)).ConfigureAwait(false);
                var level = new BaselineLevel(clients, b, s);
                levels.Add(level);
                Console.WriteLine($"  {clients,2} clients: baseline {b.PerSecond,5:F1} img/s, p50/p95/p99 {b.P50Ms:F0}/{b.P95Ms:F0}/{b.P99Ms:F0} ms, {b.CpuMsPerImage:F0} CPU ms/img | Async.Serving {s.PerSecond,5:F1} jobs/s, p50/p95/p99 {s.P50Ms:F0}/{s.P95Ms:F0}/{s.P99Ms:F0} ms, {s.CpuMsPerImage:F0} CPU ms/img | ratio {level.ThroughputRatio:F2}{Failures(b, s)}");
            }

            var fromBaseline = await baselineClient.EmbeddingAsync(photos[0], "image/jpeg").ConfigureAwait(false);
            var job = await _client!.RunAsync(BenchRepository.ResNet, photos[0], "image0.jpg", "image/jpeg").ConfigureAwait(false);
            _jobIds.Add(job.Id);
            var fromServing = job.Output is ImageEmbedOutput o ? o.Embedding : throw new InvalidOperationException($"Job {job.Id} ended {job.Status} without an embedding.");
            var cosine = TensorPrimitives.CosineSimilarity(fromBaseline, fromServing);
            var maxDiff = fromBaseline.Zip(fromServing, (x, y) => Math.Abs(x - y)).Max();
            Console.WriteLine($"  the same image through both: cosine {cosine:F6}, largest difference {maxDiff:E1} ({fromBaseline.Length} values)");
            return new BaselineFigure($"{BenchRepository.ResNet}@1", options.BaselineJobs, levels, Math.Round(cosine, 6), maxDiff);
        }
        finally
        {
            await worker.StopAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
            await baseline.StopAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        }
    }

    private async Task<SideFigure> SideAsync(int clients, Func<int, Task<string?>> send, Dictionary<string, int[]> cpuGroups)
    {
        var profile = new CpuProfile(cpuGroups);
        var result = await ClosedLoop.RunAsync(options.BaselineJobs, clients, send).ConfigureAwait(false);
        var cpu = profile.Stop();
        var systemSeconds = cpu.CpuSeconds.Where(c => c.Key is not ("bench_client" or "other")).Sum(c => c.Value);
        return new SideFigure(result.Requests, result.Succeeded, result.Failed, Math.Round(result.PerSecond, 2),
            Percentile(result.LatenciesMs, 0.50), Percentile(result.LatenciesMs, 0.95), Percentile(result.LatenciesMs, 0.99),
            Math.Round(systemSeconds * 1000 / Math.Max(1, result.Succeeded), 1), cpu);
    }

    private static string Failures(SideFigure b, SideFigure s) =>
        b.Failed + s.Failed == 0 ? "" : $" (failed: baseline {b.Failed}, Async.Serving {s.Failed})";

    /// <summary><c>--only baseline</c>: the API and step 10 alone, written to <c>baseline.json</c>.</summary>
    public async Task<BaselineFigure> RunBaselineOnlyAsync()
    {
        await StartAloneAsync().ConfigureAwait(false);
        var photos = BenchImages.Photos(64);
        Console.WriteLine($"10. naive baseline vs Async.Serving, image.embed on ResNet-18: {options.BaselineJobs} requests per system at each of {string.Join(", ", BaselineClients)} clients");
        var figure = await BaselineAsync(photos).ConfigureAwait(false);
        Report.PrintBaseline(figure);
        var path = Path.Combine(options.OutDir, "baseline.json");
        await File.WriteAllTextAsync(path, JsonSerializer.Serialize(new { machine = Machine.Describe(), finished_at = DateTimeOffset.UtcNow, baseline = figure }, Report.Json)).ConfigureAwait(false);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {path}"));
        return figure;
    }
}
