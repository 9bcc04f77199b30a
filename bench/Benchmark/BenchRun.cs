using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Diagnostics;
using Async.Serving.Contracts.Outputs;
using Async.Serving.Fixtures;
using Async.Serving.Jobs;
using Async.Serving.Models;
using Microsoft.ML.OnnxRuntime;
using StackExchange.Redis;

namespace Async.Serving.Benchmark;

internal sealed record EndToEndFigure(
    string Model, int Jobs, int Concurrency, int Succeeded, int Failed, int Refused, int Unfinished,
    double JobsPerSecond, double SubmitPerSecond, double SubmitP50Ms, double SubmitP99Ms,
    double? MeanBatchSize, long? WorkerPeakRssBytes, CpuSplit Cpu, Dictionary<string, long>? RedisCalls = null, CpuSplit? LoadCpu = null,
    Dictionary<string, double>? ThreadPoolItemsPerJob = null, SubmitTimes? SubmitTimes = null);

/// <summary>What the bench reads from the API's and the worker's /metrics at each end of a timed load (<c>BenchRun.CountersAsync</c>).</summary>
internal sealed record Counters(
    double Ended, Dictionary<string, double> PoolItems, double Messages,
    (double Sum, double Count) SubmitDurations, (double Sum, double Count) Sends, double ApiGcPauseSeconds);

/// <summary>
/// Where a timed load's submits spent their time, as means (which add up, unlike percentiles): at the
/// client, inside the API (from its first middleware to its response), and of that, from handing the job
/// to the sender until the broker confirmed its message; and how long the API stood still for its GC.
/// </summary>
internal sealed record SubmitTimes(double ClientMs, double ApiMs, double SendMs, double ApiGcPauseSeconds)
{
    public static SubmitTimes Between(LoadResult load, Counters before, Counters after)
    {
        static double MeanMs((double Sum, double Count) a, (double Sum, double Count) b) =>
            b.Count > a.Count ? Math.Round((b.Sum - a.Sum) / (b.Count - a.Count) * 1000, 2) : 0;

        return new SubmitTimes(
            load.Jobs.Count > 0 ? Math.Round(load.Jobs.Average(j => j.LatencyMs), 2) : 0,
            MeanMs(before.SubmitDurations, after.SubmitDurations),
            MeanMs(before.Sends, after.Sends),
            Math.Round(after.ApiGcPauseSeconds - before.ApiGcPauseSeconds, 3));
    }
}

internal sealed record MemoryFigure(
    int Jobs, int Refused, double SubmitPerSecond, double SubmitP50Ms, double SubmitP99Ms, long? QueueDepthAfterSubmit,
    long? ApiPeakRssBytes, long? ApiRssBytesWithJobsQueued, long? WorkerPeakRssBytes,
    int Drained, double DrainJobsPerSecond, long RedisUsedMemoryBefore, long RedisUsedMemoryAfter,
    double RedisBytesPerFinishedJob, double? RedisKeyBytesPerJobSampled);

/// <summary>
/// One end-to-end <c>image.ocr</c> run; <see cref="DetectionMaxBatch"/> is the worker's
/// <c>OcrDetectionMaxBatch</c> (null: the worker's default). A job is one page, so jobs/s is pages/s.
/// </summary>
internal sealed record OcrFigure(
    string Model, int Jobs, int Concurrency, int Pages, int Succeeded, int Failed, int Refused, int Unfinished,
    double JobsPerSecond, int LinesRead, int LinesDrawn, double LinesPerSecond, double JobP50Ms, double JobP99Ms,
    double? RecMeanBatchSize, double? ClsMeanBatchSize, int MaxBatchSize, int ConcurrentJobs, long? WorkerPeakRssBytes, CpuSplit Cpu,
    OcrInProcessFigure? InProcess, int? DetectionMaxBatch, double? DetMeanBatchSize);

internal sealed record VideoFigure(
    string Model, int Jobs, double SampleFps, double VideoSeconds, int Width, int Height, int Succeeded, int Failed, int Unfinished,
    int FramesAnalyzed, double WallSeconds, double FramesPerSecond, double InProcessImagesPerSecond, double RatioToInProcess,
    double? ResNetMeanBatchSize, long? WorkerRssReadyBytes, long? WorkerPeakRssBytes, long SampledFramesRgbBytes, CpuSplit Cpu,
    VideoOcrFigure? Ocr);

internal sealed record VideoOcrFigure(
    double SampleFps, string Status, int FramesAnalyzed, double Seconds, double FramesPerSecond, int TextSegments, double? RecMeanBatchSize, long? WorkerPeakRssBytes);

/// <summary>One benchmark run: in-process limit, then the API and one worker at a time as child processes.</summary>
internal sealed partial class BenchRun(BenchOptions options) : IAsyncDisposable
{
    /// <summary>The tenant of the benchmark's API key (its jobs, and its index, are removed at the end).</summary>
    private const string BenchTenant = "bench";

    private readonly List<ServingProcess> _processes = [];
    private readonly List<string> _jobIds = [];
    private readonly string _apiKey = "sk_bench_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
    private string? _repository;
    private ServingProcess? _api;
    private int _apiManagementPort;
    private LoadClient? _client;
    private ConnectionMultiplexer? _redis;

    public async Task<BenchSummary> RunAsync()
    {
        Directory.CreateDirectory(options.OutDir);
        _repository = BenchRepository.Create(options.ModelsDir);
        var repository = ModelRepository.Load(_repository, requireWeights: true);
        Console.WriteLine($"model repository: {_repository}");

        var photos = BenchImages.Photos(64);
        var pngs = BenchImages.TinyPngs(16);
        Console.WriteLine($"test images: {photos.Count} JPEGs (640×480 and 1280×960, mean {photos.Average(p => p.Length) / 1024:F0} KiB), {pngs.Count} 8×8 PNGs");

        Console.WriteLine("1. in-process limit (decode + preprocess + ONNX Runtime, no queue)");
        var inProcess = InProcessLimit.Run(repository.Resolve(BenchRepository.ResNet)!, photos, [1, 4, 8, 16], options.InProcessImages, 50_000_000);

        _redis = await ConnectionMultiplexer.ConnectAsync(options.Redis + ",allowAdmin=true").ConfigureAwait(false);
        await PurgeQueuesAsync(delete: false).ConfigureAwait(false);
        await StartApiAsync().ConfigureAwait(false);

        Console.WriteLine($"2. end to end, image.embed on ResNet-18, batching on: {options.ResNetJobs} jobs, {options.Concurrency} clients");
        var batched = await EndToEndAsync(BenchRepository.ResNet, photos, "image/jpeg", options.ResNetJobs, warmUp: options.ResNetWarmUpJobs).ConfigureAwait(false);

        Console.WriteLine($"4. end to end, batching off (max_batch_size 1): {options.ResNetJobs} jobs");
        var unbatched = await EndToEndAsync(BenchRepository.ResNetNoBatch, photos, "image/jpeg", options.ResNetJobs, warmUp: options.ResNetWarmUpJobs).ConfigureAwait(false);

        Console.WriteLine($"3. orchestration-bound, trivial model: {options.TrivialJobs} jobs, {options.Concurrency} clients");
        var trivial = await EndToEndAsync(BenchRepository.Trivial, pngs, "image/png", options.TrivialJobs, warmUp: options.WarmUpJobs).ConfigureAwait(false);

        Console.WriteLine($"5. memory: {options.QueuedJobs} trivial jobs queued with no worker, then drained");
        var memory = await MemoryAsync(pngs).ConfigureAwait(false);

        OcrFigure? ocr = null, ocrDetectionAlone = null;
        if (options.OcrJobs > 0)
        {
            Console.WriteLine($"6. OCR, image.ocr on PP-OCRv4: {options.OcrJobs} jobs of printed pages, {options.Concurrency} clients; detection batched, then one image at a time");
            (ocr, ocrDetectionAlone) = await OcrAsync(repository.Resolve(BenchRepository.OcrId)!).ConfigureAwait(false);
        }

        VideoFigure? video = null;
        if (options.VideoJobs > 0)
        {
            Console.WriteLine($"7. video.analyze: {options.VideoJobs} videos at {options.VideoFps} fps without OCR, then one at 2 fps with OCR");
            video = await VideoAsync(repository.Resolve(BenchRepository.Video)!, inProcess.Best.ImagesPerSecond).ConfigureAwait(false);
        }

        PriorityFigure? priorities = null;
        if (options.PriorityJobs > 0)
        {
            Console.WriteLine($"8. priorities: a backlog of {options.PriorityJobs} image.embed jobs (70 % low, 20 % normal, 10 % high), one worker; then the same all normal");
            priorities = await PrioritiesAsync(photos).ConfigureAwait(false);
        }

        CacheFigure? cache = null;
        if (options.CacheJobs > 0)
        {
            Console.WriteLine($"9. result cache, trivial model: {options.CacheJobs} distinct jobs (misses), then the same {options.CacheJobs} again (hits), {options.Concurrency} clients");
            var (worker, _) = await StartWorkerAsync(BenchRepository.Trivial).ConfigureAwait(false);
            try
            {
                cache = await new CacheScenario(_client!, options.Concurrency, _jobIds.AddRange).RunAsync(BenchRepository.Trivial, options.CacheJobs).ConfigureAwait(false);
            }
            finally
            {
                await worker.StopAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
            }
        }

        BaselineFigure? baseline = null;
        if (options.BaselineJobs > 0)
        {
            Console.WriteLine($"10. naive baseline vs Async.Serving, image.embed on ResNet-18: {options.BaselineJobs} requests per system at each of {string.Join(", ", BaselineClients)} clients");
            baseline = await BaselineAsync(photos).ConfigureAwait(false);
        }

        if (options.BlobVideos > 0)
        {
            Console.WriteLine($"11. large inputs: {options.BlobVideos} videos of 50-100 MiB queued with no worker (their bytes in the blob store)");
            await WriteFigureAsync("blobs.json", await BlobsAsync().ConfigureAwait(false)).ConfigureAwait(false);
        }

        return new BenchSummary(Machine.Describe(), DateTimeOffset.UtcNow, options.ResNetJobs, options.TrivialJobs, options.QueuedJobs,
            options.Concurrency, inProcess, batched, unbatched, trivial, memory, ocr, ocrDetectionAlone, video, priorities, cache, baseline);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes)
        {
            process.Dispose();
        }

        _client?.Dispose();
        try
        {
            await DeleteJobsAsync().ConfigureAwait(false);
            await PurgeQueuesAsync(delete: true).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or HttpRequestException or TimeoutException)
        {
            Console.Error.WriteLine($"cleanup: {ex.Message}");
        }

        if (_redis is not null)
        {
            await _redis.DisposeAsync().ConfigureAwait(false);
        }

        if (_repository is not null && Directory.Exists(_repository))
        {
            Directory.Delete(_repository, recursive: true);
        }
    }

    private static readonly JsonSerializerOptions FigureJson = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary>What a step run alone (<c>--only …</c>) needs first: the output folder, a model repository, Redis, the bench queues emptied, a fresh API.</summary>
    private async Task StartAloneAsync()
    {
        Directory.CreateDirectory(options.OutDir);
        _repository = BenchRepository.Create(options.ModelsDir);
        _redis = await ConnectionMultiplexer.ConnectAsync(options.Redis + ",allowAdmin=true").ConfigureAwait(false);
        await PurgeQueuesAsync(delete: false).ConfigureAwait(false);
        await StartApiAsync().ConfigureAwait(false);
    }

    /// <summary>Writes a step's figure to <paramref name="name"/> in the output folder (camelCase JSON, as the docs name its fields).</summary>
    private async Task WriteFigureAsync<T>(string name, T figure)
    {
        var path = Path.Combine(options.OutDir, name);
        await File.WriteAllTextAsync(path, JsonSerializer.Serialize(figure, FigureJson)).ConfigureAwait(false);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {path}"));
    }

    private Dictionary<string, string> ServiceEnvironment() => new()
    {
        ["ConnectionStrings__Redis"] = options.Redis,
        ["ConnectionStrings__Postgres"] = options.Postgres,
        ["Serving__RabbitMq__Host"] = options.RabbitHost,
        ["Serving__RabbitMq__Port"] = options.RabbitPort,
        ["Serving__Models__Path"] = _repository!,
        ["DOTNET_ENVIRONMENT"] = "Production",
        ["ASPNETCORE_ENVIRONMENT"] = "Production",
    };

    private async Task StartApiAsync()
    {
        var port = ServingProcess.FreePort();
        var env = ServiceEnvironment();
        env["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        _apiManagementPort = ServingProcess.FreePort();
        env["Serving__Management__Port"] = _apiManagementPort.ToString(CultureInfo.InvariantCulture); // not a running stack's 9465
        env["Serving__Auth__DevelopmentKey"] = _apiKey;
        env["Serving__Auth__DevelopmentTenant"] = BenchTenant;
        // The load generator is one key: the per-key limit would measure itself, not the system.
        env["Serving__RateLimits__PermitsPerSecond"] = "1000000";
        env["Serving__RateLimits__Burst"] = "1000000";
        env["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning";
        _api = ServingProcess.Start("api", options.Dll("Api", "Async.Serving.Api"), env, Path.Combine(options.OutDir, "logs", "api.log"));
        _processes.Add(_api);
        _client = new LoadClient(new Uri($"http://127.0.0.1:{port}"), _apiKey);
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!await _client.IsReadyAsync().ConfigureAwait(false))
        {
            if (_api.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"The API did not become ready; see {options.OutDir}/logs/api.log.");
            }

            await Task.Delay(300).ConfigureAwait(false);
        }

        Console.WriteLine($"  API ready on port {port} (pid {_api.Pid})");
    }

    private async Task<(ServingProcess Worker, int MetricsPort)> StartWorkerAsync(string model, IReadOnlyDictionary<string, string>? settings = null)
    {
        var metricsPort = ServingProcess.FreePort();
        var env = ServiceEnvironment();
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            env[key] = value;
        }

        env["Serving__Worker__Models__0"] = model;
        env["Serving__Worker__MetricsPort"] = metricsPort.ToString(CultureInfo.InvariantCulture);
        var worker = ServingProcess.Start($"worker {model}", options.Dll("Worker", "Async.Serving.Worker"), env,
            Path.Combine(options.OutDir, "logs", $"worker-{model}.log"), readyLine: "Worker ready");
        _processes.Add(worker);
        await worker.WaitReadyAsync(TimeSpan.FromSeconds(180)).ConfigureAwait(false);
        Console.WriteLine($"  worker for {model} ready (pid {worker.Pid})");
        return (worker, metricsPort);
    }

    private Dictionary<string, int[]> CpuGroups(ServingProcess? worker)
    {
        var groups = new Dictionary<string, int[]>
        {
            ["api"] = [_api!.Pid],
            ["rabbitmq"] = [.. ProcStats.FindByName("beam.smp")],
            ["redis"] = [.. ProcStats.FindByName("redis-server")],
            // The ledger's writes and Hangfire's queue polls (its connections are pooled: the processes live through the step).
            ["postgres"] = [.. ProcStats.FindByName("postgres")],
            ["bench_client"] = [Environment.ProcessId],
        };
        if (worker is not null)
        {
            groups["worker"] = [worker.Pid];
        }

        return groups;
    }

    private async Task<EndToEndFigure> EndToEndAsync(
        string model, IReadOnlyList<byte[]> files, string contentType, int jobs, int warmUp, Func<ServingProcess, Task<Func<Task>>>? duringLoad = null)
    {
        var (worker, metricsPort) = await StartWorkerAsync(model).ConfigureAwait(false);
        try
        {
            // One connection for the reads of the worker's count, rather than one per read inside the window measured.
            using var metrics = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            // The warm-up takes every step the timed load takes, in two rounds: both processes' /metrics
            // read, the submits, the worker's count read until it ended them, every result polled. Code a
            // step runs first (the API's /metrics and the reads behind it, the polls) is then compiled, and
            // promoted to its optimised tier, before the window rather than in its first second.
            for (var round = 0; round < 2 && warmUp > 0; round++)
            {
                var warmEnded = (await CountersAsync(metrics, metricsPort).ConfigureAwait(false)).Ended;
                var warm = await _client!.SubmitManyAsync(model, files, contentType, (warmUp + 1 - round) / 2, options.Concurrency).ConfigureAwait(false);
                _jobIds.AddRange(warm.Jobs.Select(j => j.Id));
                await WaitEndedAsync(metrics, metricsPort, warmEnded + warm.Jobs.Count).ConfigureAwait(false);
                await CountersAsync(metrics, metricsPort).ConfigureAwait(false);
                await _client.WaitAllAsync(warm.Jobs, TimeSpan.FromSeconds(120)).ConfigureAwait(false);
            }

            Console.WriteLine($"  warmed up with {warmUp} jobs; timed load of {jobs} jobs");

            var before = await AllBatchMetricsAsync(metricsPort).ConfigureAwait(false);
            var loadEnded = duringLoad is null ? null : await duringLoad(worker).ConfigureAwait(false);
            var redisBefore = await RedisCallsAsync().ConfigureAwait(false);
            var profile = new CpuProfile(CpuGroups(worker));
            var countersBefore = await CountersAsync(metrics, metricsPort).ConfigureAwait(false);
            var load = await _client!.SubmitManyAsync(model, files, contentType, jobs, options.Concurrency).ConfigureAwait(false);
            _jobIds.AddRange(load.Jobs.Select(j => j.Id));
            // The CPU of the window jobs/s is measured over (until the worker ended the last job), apart
            // from the polls that then read every result once.
            var loadCpu = await UntilEndedAsync(metrics, metricsPort, countersBefore.Ended + load.Jobs.Count, profile).ConfigureAwait(false);
            var countersAfter = await CountersAsync(metrics, metricsPort).ConfigureAwait(false);
            var finished = await _client.WaitAllAsync(load.Jobs, TimeSpan.FromSeconds(300)).ConfigureAwait(false);
            var cpu = profile.Stop();
            var redisCalls = Delta(redisBefore, await RedisCallsAsync().ConfigureAwait(false));
            if (loadEnded is not null)
            {
                await loadEnded().ConfigureAwait(false);
            }
            var after = await AllBatchMetricsAsync(metricsPort).ConfigureAwait(false);

            var succeeded = finished.Where(f => f.Status == "succeeded").ToList();
            var failed = finished.Count - succeeded.Count;
            ReportUnsucceeded(finished);
            var last = succeeded.Count > 0 ? succeeded.Max(f => f.CompletedAt ?? load.LastSubmit) : load.LastSubmit;
            var seconds = Math.Max(0.001, (last - load.FirstSubmit).TotalSeconds);
            var latencies = load.Jobs.Select(j => j.LatencyMs).Order().ToArray();
            var figure = new EndToEndFigure(model, jobs, options.Concurrency, succeeded.Count, failed, load.Refused,
                load.Jobs.Count - finished.Count, Math.Round(succeeded.Count / seconds, 2),
                Math.Round(load.Jobs.Count / Math.Max(0.001, load.SubmitSeconds), 1),
                Percentile(latencies, 0.50), Percentile(latencies, 0.99),
                MeanBatch(before, after, l => l == $"{model}@1"), ProcStats.StatusBytes(worker.Pid, "VmHWM"), cpu, redisCalls, loadCpu,
                countersAfter.PoolItems.ToDictionary(p => p.Key, p => Math.Round((p.Value - countersBefore.PoolItems[p.Key]) / Math.Max(1, succeeded.Count), 2)),
                SubmitTimes.Between(load, countersBefore, countersAfter));
            Console.WriteLine($"  {figure.JobsPerSecond:F1} jobs/s end to end ({succeeded.Count}/{jobs} succeeded in {seconds:F2} s), submit p50 {figure.SubmitP50Ms:F1} ms p99 {figure.SubmitP99Ms:F1} ms, mean batch {figure.MeanBatchSize?.ToString("F2", CultureInfo.InvariantCulture) ?? "n/a"}");
            Console.WriteLine($"  CPU share of {cpu.Cores} cores over {cpu.WallSeconds:F1} s: {string.Join(", ", cpu.ShareOfMachine.Select(s => $"{s.Key} {s.Value:P0}"))}");
            Console.WriteLine($"  CPU per succeeded job: {string.Join(", ", cpu.CpuSeconds.Select(s => $"{s.Key} {s.Value * 1e6 / Math.Max(1, succeeded.Count):F0} µs"))}; all {cpu.MachineBusySeconds * 1e6 / Math.Max(1, succeeded.Count):F0} µs");
            Console.WriteLine($"    of which during the load (submits and runs, {loadCpu.WallSeconds:F1} s, until the worker ended the last job; the rest is one poll per job after it): {string.Join(", ", loadCpu.CpuSeconds.Select(s => $"{s.Key} {s.Value * 1e6 / Math.Max(1, succeeded.Count):F0} µs"))}; all {loadCpu.MachineBusySeconds * 1e6 / Math.Max(1, succeeded.Count):F0} µs");
            // Counts, unlike CPU time, do not change with what else the host runs: they compare code across runs.
            double PerJob(long n) => (double)n / Math.Max(1, succeeded.Count);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  context switches per succeeded job: {string.Join(", ", cpu.ContextSwitches.Select(s => $"{s.Key} {PerJob(s.Value):F1}"))}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  thread pool work items per succeeded job, during the load (hand-offs between threads): {string.Join(", ", figure.ThreadPoolItemsPerJob!.Select(p => $"{p.Key} {p.Value:F1}"))}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  jobs per broker message (the API's submits, during the load): {load.Jobs.Count / Math.Max(1, countersAfter.Messages - countersBefore.Messages):F2}"));
            var times = figure.SubmitTimes!;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  a submit's mean latency: {times.ClientMs:F1} ms at the client, {times.ApiMs:F1} ms in the API (http_request_duration_seconds), of which {times.SendMs:F1} ms from handing its job to the sender until the broker confirmed it (serving_api_job_send_seconds); the API paused for GC {times.ApiGcPauseSeconds:F2} s"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  read/write syscalls per succeeded job: {string.Join(", ", cpu.ReadWriteSyscalls.Select(s => $"{s.Key} {PerJob(s.Value):F1}"))}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  Redis commands per succeeded job: {PerJob(redisCalls.Values.Sum()):F1} ({string.Join(", ", redisCalls.OrderByDescending(c => c.Value).Take(8).Select(c => $"{c.Key} {PerJob(c.Value):F2}"))})"));
            await WriteLatenciesAsync($"submits-{model}.csv", load).ConfigureAwait(false);
            return figure;
        }
        finally
        {
            await worker.StopAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Each submit of a timed load, in the order they were sent: when it was sent (Unix ms, to set beside
    /// other records of the same moments) and how long it took, to see whether a tail is spread over the
    /// load or gathered in moments.
    /// </summary>
    private Task WriteLatenciesAsync(string name, LoadResult load)
    {
        var lines = load.Jobs
            .OrderBy(j => j.SubmittedAt)
            .Select(j => string.Create(CultureInfo.InvariantCulture, $"{j.SubmittedAt.ToUnixTimeMilliseconds()},{j.LatencyMs:F2}"));
        return File.WriteAllLinesAsync(Path.Combine(options.OutDir, name), ["sent_unix_ms,latency_ms", .. lines]);
    }

    private async Task<MemoryFigure> MemoryAsync(IReadOnlyList<byte[]> pngs)
    {
        var db = _redis!.GetDatabase();
        var usedBefore = await UsedMemoryAsync().ConfigureAwait(false);
        var load = await _client!.SubmitManyAsync(BenchRepository.Trivial, pngs, "image/png", options.QueuedJobs, options.Concurrency).ConfigureAwait(false);
        _jobIds.AddRange(load.Jobs.Select(j => j.Id));
        var apiPeak = ProcStats.StatusBytes(_api!.Pid, "VmHWM");
        var apiRss = ProcStats.StatusBytes(_api.Pid, "VmRSS");
        var depth = await QueueDepthAsync($"infer-{BenchRepository.Trivial}-1").ConfigureAwait(false);
        var latencies = load.Jobs.Select(j => j.LatencyMs).Order().ToArray();
        Console.WriteLine($"  {load.Jobs.Count} queued at {load.Jobs.Count / Math.Max(0.001, load.SubmitSeconds):F0} submits/s (no worker running), queue depth {depth?.ToString(CultureInfo.InvariantCulture) ?? "n/a"}; API RSS {Mib(apiRss)}, peak {Mib(apiPeak)}");

        var (worker, _) = await StartWorkerAsync(BenchRepository.Trivial).ConfigureAwait(false);
        IReadOnlyList<Finished> finished;
        long? workerPeak;
        try
        {
            finished = await _client.WaitAllAsync(load.Jobs, TimeSpan.FromSeconds(300)).ConfigureAwait(false);
            workerPeak = ProcStats.StatusBytes(worker.Pid, "VmHWM");
        }
        finally
        {
            await worker.StopAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        }

        var succeeded = finished.Where(f => f.Status == "succeeded" && f.StartedAt is not null && f.CompletedAt is not null).ToList();
        var drainSeconds = succeeded.Count > 0 ? (succeeded.Max(f => f.CompletedAt!.Value) - succeeded.Min(f => f.StartedAt!.Value)).TotalSeconds : 0;
        var usedAfter = await UsedMemoryAsync().ConfigureAwait(false);

        // Cross-check on this run's own keys: what one finished job occupies (hash + result).
        double? sampled = null;
        var sample = succeeded.Take(200).ToList();
        if (sample.Count > 0)
        {
            long total = 0;
            foreach (var job in sample)
            {
                foreach (var key in new[] { RedisJobStore.JobKey(job.Id), RedisJobStore.ResultKey(job.Id), RedisJobStore.InputKey(job.Id) })
                {
                    var usage = await db.ExecuteAsync("MEMORY", "USAGE", key).ConfigureAwait(false);
                    total += usage.IsNull ? 0 : (long)usage;
                }
            }

            sampled = Math.Round((double)total / sample.Count, 1);
        }

        var figure = new MemoryFigure(options.QueuedJobs, load.Refused, Math.Round(load.Jobs.Count / Math.Max(0.001, load.SubmitSeconds), 1),
            Percentile(latencies, 0.50), Percentile(latencies, 0.99), depth, apiPeak, apiRss, workerPeak,
            succeeded.Count, Math.Round(succeeded.Count / Math.Max(0.001, drainSeconds), 1), usedBefore, usedAfter,
            Math.Round((double)(usedAfter - usedBefore) / Math.Max(1, succeeded.Count), 1), sampled);
        Console.WriteLine($"  drained {succeeded.Count} at {figure.DrainJobsPerSecond:F0} jobs/s; worker peak RSS {Mib(workerPeak)}; Redis {figure.RedisBytesPerFinishedJob:F0} B per finished job (keys sampled: {sampled?.ToString("F0", CultureInfo.InvariantCulture) ?? "n/a"} B)");
        return figure;
    }

    /// <summary>
    /// Step 6: the in-process OCR limit, then the same load end to end twice in one run: detection
    /// batched across jobs (the worker's default <c>OcrDetectionMaxBatch</c>), then one image at a
    /// time (<c>OcrDetectionMaxBatch</c> 1), each with a fresh worker.
    /// </summary>
    private async Task<(OcrFigure Batched, OcrFigure OneAtATime)> OcrAsync(ModelEntry entry)
    {
        var pages = BenchImages.TextPages(8);
        var files = pages.Select(p => p.Png).ToList();
        Console.WriteLine($"  {pages.Count} pages, 1000×700 PNG, {pages.Min(p => p.Lines.Length)}-{pages.Max(p => p.Lines.Length)} lines each, mean {files.Average(f => f.Length) / 1024:F0} KiB");
        OcrInProcessFigure? inProcess = null;
        try
        {
            inProcess = await InProcessLimit.OcrAsync(entry, files, Math.Clamp(options.OcrJobs / 2, pages.Count, 24), 50_000_000).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OnnxRuntimeException or ModelConfigException or InvalidOperationException)
        {
            Console.WriteLine($"  in-process OCR limit not measured: {ex.Message}");
        }

        Console.WriteLine("  end to end, detection batched across jobs (worker default)");
        var batched = await OcrEndToEndAsync(entry, pages, inProcess, detectionMaxBatch: null).ConfigureAwait(false);
        Console.WriteLine("  end to end, detection one image at a time (Serving__Worker__OcrDetectionMaxBatch=1)");
        var alone = await OcrEndToEndAsync(entry, pages, inProcess, detectionMaxBatch: 1).ConfigureAwait(false);
        Console.WriteLine($"  detection batched / one at a time: {batched.JobsPerSecond / Math.Max(0.001, alone.JobsPerSecond):F2}x pages/s");
        return (batched, alone);
    }

    private async Task<OcrFigure> OcrEndToEndAsync(ModelEntry entry, IReadOnlyList<(byte[] Png, string[] Lines)> pages, OcrInProcessFigure? inProcess, int? detectionMaxBatch)
    {
        var files = pages.Select(p => p.Png).ToList();
        var settings = new Dictionary<string, string>();
        if (detectionMaxBatch is { } max)
        {
            settings["Serving__Worker__OcrDetectionMaxBatch"] = max.ToString(CultureInfo.InvariantCulture);
        }

        var (worker, metricsPort) = await StartWorkerAsync(BenchRepository.Ocr, settings).ConfigureAwait(false);
        try
        {
            var warm = await _client!.SubmitManyAsync(BenchRepository.Ocr, files, "image/png", Math.Min(8, options.OcrJobs), options.Concurrency, "image.ocr").ConfigureAwait(false);
            _jobIds.AddRange(warm.Jobs.Select(j => j.Id));
            await _client.WaitAllAsync(warm.Jobs, TimeSpan.FromSeconds(180)).ConfigureAwait(false);

            var before = await AllBatchMetricsAsync(metricsPort).ConfigureAwait(false);
            var detBefore = await HistogramAsync(metricsPort, DetectionBatchMetric).ConfigureAwait(false);
            var profile = new CpuProfile(CpuGroups(worker));
            var load = await _client.SubmitManyAsync(BenchRepository.Ocr, files, "image/png", options.OcrJobs, options.Concurrency, "image.ocr").ConfigureAwait(false);
            _jobIds.AddRange(load.Jobs.Select(j => j.Id));
            var finished = await _client.WaitAllAsync(load.Jobs, TimeSpan.FromSeconds(600), keepOutput: true).ConfigureAwait(false);
            var cpu = profile.Stop();
            var after = await AllBatchMetricsAsync(metricsPort).ConfigureAwait(false);
            var detAfter = await HistogramAsync(metricsPort, DetectionBatchMetric).ConfigureAwait(false);

            var succeeded = finished.Where(f => f.Status == "succeeded").ToList();
            ReportUnsucceeded(finished);
            var last = succeeded.Count > 0 ? succeeded.Max(f => f.CompletedAt ?? load.LastSubmit) : load.LastSubmit;
            var seconds = Math.Max(0.001, (last - load.FirstSubmit).TotalSeconds);
            var linesRead = succeeded.Sum(f => f.Output is ImageOcrOutput o ? o.Lines.Count : 0);
            var submittedAt = load.Jobs.ToDictionary(j => j.Id, j => j.SubmittedAt);
            var indexOf = load.Jobs.Select((j, i) => (j.Id, i)).ToDictionary(x => x.Id, x => x.i);
            var linesDrawn = succeeded.Sum(f => pages[indexOf[f.Id] % pages.Count].Lines.Length);
            var latencies = succeeded.Where(f => f.CompletedAt is not null)
                .Select(f => (f.CompletedAt!.Value - submittedAt[f.Id]).TotalMilliseconds).Order().ToArray();
            var figure = new OcrFigure(BenchRepository.OcrId, options.OcrJobs, options.Concurrency, pages.Count, succeeded.Count,
                finished.Count - succeeded.Count, load.Refused, load.Jobs.Count - finished.Count,
                Math.Round(succeeded.Count / seconds, 2), linesRead, linesDrawn, Math.Round(linesRead / seconds, 1),
                Percentile(latencies, 0.50), Percentile(latencies, 0.99),
                MeanBatch(before, after, l => l.StartsWith(BenchRepository.OcrId + "/rec", StringComparison.Ordinal)),
                MeanBatch(before, after, l => l == BenchRepository.OcrId + "/cls"),
                entry.Config.MaxBatchSize, entry.Config.Ocr!.ConcurrentJobs, ProcStats.StatusBytes(worker.Pid, "VmHWM"), cpu, inProcess,
                detectionMaxBatch, MeanBatch(detBefore, detAfter, l => l == BenchRepository.OcrId));
            Console.WriteLine($"  {figure.JobsPerSecond:F2} pages/s, {figure.LinesPerSecond:F1} lines/s end to end ({succeeded.Count}/{options.OcrJobs} succeeded in {seconds:F2} s; {linesRead} lines returned, {linesDrawn} drawn), job latency p50 {figure.JobP50Ms:F0} ms p99 {figure.JobP99Ms:F0} ms");
            Console.WriteLine($"  mean batch: detection {Num(figure.DetMeanBatchSize)}, recogniser {Num(figure.RecMeanBatchSize)}, classifier {Num(figure.ClsMeanBatchSize)} (max_batch_size {figure.MaxBatchSize}); worker peak RSS {Mib(figure.WorkerPeakRssBytes)}");
            Console.WriteLine($"  CPU share of {cpu.Cores} cores over {cpu.WallSeconds:F1} s: {string.Join(", ", cpu.ShareOfMachine.Select(s => $"{s.Key} {s.Value:P0}"))}");
            return figure;
        }
        finally
        {
            await worker.StopAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        }
    }

    private async Task<VideoFigure> VideoAsync(ModelEntry entry, double inProcessImagesPerSecond)
    {
        const int width = 480, height = 360;
        (int Seed, double Seconds)[] shots = [(3001, 10), (3002, 10), (3003, 10), (3004, 10), (3005, 10), (3006, 10)];
        var videoSeconds = shots.Sum(s => s.Seconds);
        var made = Stopwatch.GetTimestamp();
        // A caption over the middle 30 s gives the OCR job text to read (short enough to fit the frame); the embedding does not mind it.
        var mp4 = await SceneVideos.ShotsAsync(shots, new SceneVideos.Caption("SALE ENDS FRIDAY", 15, 45), width, height).ConfigureAwait(false);
        Console.WriteLine($"  video: {shots.Length} shots × 10 s, {width}×{height}, 25 fps, H.264 MP4 of {mp4.Length / 1024} KiB (made in {Stopwatch.GetElapsedTime(made).TotalSeconds:F0} s)");
        var files = new[] { mp4 };
        var fps = options.VideoFps.ToString(CultureInfo.InvariantCulture);
        var resnet = $"{BenchRepository.ResNet}@1";

        var (worker, metricsPort) = await StartWorkerAsync(BenchRepository.Video).ConfigureAwait(false);
        try
        {
            // Warm-up: one short pass (1 fps) through ffmpeg, the embedding batcher and the finish path.
            var warm = await _client!.SubmitManyAsync(BenchRepository.Video, files, "video/mp4", 1, 1, "video.analyze", """{"sample_fps":1}""").ConfigureAwait(false);
            _jobIds.AddRange(warm.Jobs.Select(j => j.Id));
            await _client.WaitAllAsync(warm.Jobs, TimeSpan.FromSeconds(180)).ConfigureAwait(false);
            var rssReady = ProcStats.StatusBytes(worker.Pid, "VmRSS");

            var before = await AllBatchMetricsAsync(metricsPort).ConfigureAwait(false);
            var profile = new CpuProfile(CpuGroups(worker));
            var load = await _client.SubmitManyAsync(BenchRepository.Video, files, "video/mp4", options.VideoJobs,
                Math.Min(options.VideoJobs, options.Concurrency), "video.analyze", $$"""{"sample_fps":{{fps}},"ocr":false}""").ConfigureAwait(false);
            _jobIds.AddRange(load.Jobs.Select(j => j.Id));
            var finished = await _client.WaitAllAsync(load.Jobs, TimeSpan.FromSeconds(600), keepOutput: true).ConfigureAwait(false);
            var cpu = profile.Stop();
            var after = await AllBatchMetricsAsync(metricsPort).ConfigureAwait(false);
            var peak = ProcStats.StatusBytes(worker.Pid, "VmHWM");

            var succeeded = finished.Where(f => f.Status == "succeeded").ToList();
            ReportUnsucceeded(finished);
            var last = succeeded.Count > 0 ? succeeded.Max(f => f.CompletedAt ?? load.LastSubmit) : load.LastSubmit;
            var seconds = Math.Max(0.001, (last - load.FirstSubmit).TotalSeconds);
            var frames = succeeded.Sum(f => f.Output is VideoAnalyzeOutput o ? o.FramesAnalyzed : 0);
            var framesPerSecond = Math.Round(frames / seconds, 2);
            var resnetBatch = MeanBatch(before, after, l => l == resnet);
            Console.WriteLine($"  {framesPerSecond:F1} frames/s end to end ({succeeded.Count}/{options.VideoJobs} videos, {frames} frames in {seconds:F2} s; {(double)frames / Math.Max(1, succeeded.Count):F0} frames a video), in-process ResNet-18 limit {inProcessImagesPerSecond:F1} img/s (JPEG decode included), ratio {framesPerSecond / inProcessImagesPerSecond:F2}");
            Console.WriteLine($"  mean {resnet} batch {Num(resnetBatch)}; worker RSS after warm-up {Mib(rssReady)}, peak {Mib(peak)}; the sampled frames as RGB24 at {width}×{height} would be {Mib((long)frames / Math.Max(1, succeeded.Count) * width * height * 3)} a video");
            Console.WriteLine($"  CPU share of {cpu.Cores} cores over {cpu.WallSeconds:F1} s: {string.Join(", ", cpu.ShareOfMachine.Select(s => $"{s.Key} {s.Value:P0}"))}");

            VideoOcrFigure? ocr = null;
            var ocrBefore = await AllBatchMetricsAsync(metricsPort).ConfigureAwait(false);
            var ocrLoad = await _client.SubmitManyAsync(BenchRepository.Video, files, "video/mp4", 1, 1, "video.analyze", """{"sample_fps":2,"ocr":true}""").ConfigureAwait(false);
            _jobIds.AddRange(ocrLoad.Jobs.Select(j => j.Id));
            var ocrFinished = await _client.WaitAllAsync(ocrLoad.Jobs, TimeSpan.FromSeconds(600), keepOutput: true).ConfigureAwait(false);
            var ocrAfter = await AllBatchMetricsAsync(metricsPort).ConfigureAwait(false);
            if (ocrFinished is [var job] && ocrLoad.Jobs is [var submitted])
            {
                var ocrSeconds = Math.Max(0.001, ((job.CompletedAt ?? DateTimeOffset.UtcNow) - submitted.SubmittedAt).TotalSeconds);
                var ocrFrames = job.Output is VideoAnalyzeOutput o ? o.FramesAnalyzed : 0;
                var segments = job.Output is VideoAnalyzeOutput { Text: { } t } ? t.Count : 0;
                ocr = new VideoOcrFigure(2, job.Status, ocrFrames, Math.Round(ocrSeconds, 2), Math.Round(ocrFrames / ocrSeconds, 2), segments,
                    MeanBatch(ocrBefore, ocrAfter, l => l.StartsWith(BenchRepository.OcrId + "/rec", StringComparison.Ordinal)),
                    ProcStats.StatusBytes(worker.Pid, "VmHWM"));
                var texts = job.Output is VideoAnalyzeOutput { Text: { } u } ? string.Join(" | ", u.Select(x => x.Text)) : "";
                Console.WriteLine($"  with OCR at 2 fps: {job.Status}, {ocr.FramesPerSecond:F1} frames/s ({ocrFrames} frames in {ocrSeconds:F2} s), {segments} text segments [{texts}], recogniser mean batch {Num(ocr.RecMeanBatchSize)}, worker peak RSS {Mib(ocr.WorkerPeakRssBytes)}");
            }
            else
            {
                Console.WriteLine("  with OCR at 2 fps: the job did not finish in time");
            }

            return new VideoFigure($"{BenchRepository.Video}@1", options.VideoJobs, options.VideoFps, videoSeconds, width, height, succeeded.Count,
                finished.Count - succeeded.Count, load.Jobs.Count - finished.Count, frames, Math.Round(seconds, 2), framesPerSecond,
                inProcessImagesPerSecond, Math.Round(framesPerSecond / inProcessImagesPerSecond, 3), resnetBatch, rssReady,
                peak,
                (long)frames / Math.Max(1, succeeded.Count) * width * height * 3, cpu, ocr);
        }
        finally
        {
            await worker.StopAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        }
    }

    private static void ReportUnsucceeded(IReadOnlyList<Finished> finished)
    {
        foreach (var code in finished.Where(f => f.Status != "succeeded").GroupBy(f => $"{f.Status}/{f.ErrorCode}"))
        {
            Console.WriteLine($"  {code.Count()} jobs ended {code.Key}");
        }
    }

    private static double? MeanBatch(
        IReadOnlyDictionary<string, (double Sum, double Count)> before, IReadOnlyDictionary<string, (double Sum, double Count)> after, Func<string, bool> label)
    {
        double sum = 0, count = 0;
        foreach (var (name, value) in after.Where(a => label(a.Key)))
        {
            var old = before.GetValueOrDefault(name);
            sum += value.Sum - old.Sum;
            count += value.Count - old.Count;
        }

        return count > 0 ? Math.Round(sum / count, 2) : null;
    }

    /// <summary>Calls per Redis command since the server started (<c>INFO commandstats</c>; the whole server, so other clients' too).</summary>
    private async Task<Dictionary<string, long>> RedisCallsAsync()
    {
        var info = (string)(await _redis!.GetDatabase().ExecuteAsync("INFO", "commandstats").ConfigureAwait(false))!;
        var calls = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in info.Split('\n'))
        {
            // cmdstat_evalsha:calls=123,usec=...
            if (line.StartsWith("cmdstat_", StringComparison.Ordinal) && line.IndexOf(":calls=", StringComparison.Ordinal) is > 0 and var colon)
            {
                var value = line[(colon + ":calls=".Length)..];
                calls[line["cmdstat_".Length..colon]] = long.Parse(value[..value.IndexOf(',', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
            }
        }

        return calls;
    }

    private static Dictionary<string, long> Delta(Dictionary<string, long> before, Dictionary<string, long> after) =>
        after.Select(a => (a.Key, Value: a.Value - before.GetValueOrDefault(a.Key))).Where(a => a.Value > 0).ToDictionary(a => a.Key, a => a.Value, StringComparer.Ordinal);

    private async Task<long> UsedMemoryAsync()
    {
        var info = (string)(await _redis!.GetDatabase().ExecuteAsync("INFO", "memory").ConfigureAwait(false))!;
        var line = info.Split('\n').First(l => l.StartsWith("used_memory:", StringComparison.Ordinal));
        return long.Parse(line["used_memory:".Length..].Trim(), CultureInfo.InvariantCulture);
    }

    /// <summary>The worker's histogram of images per text detector run (label <c>model</c>).</summary>
    private const string DetectionBatchMetric = "serving_ocr_detection_batch_size";

    /// <summary>serving_batch_size sum and count of every batcher (label <c>model</c>) from the worker's /metrics.</summary>
    private static Task<IReadOnlyDictionary<string, (double Sum, double Count)>> AllBatchMetricsAsync(int port) => HistogramAsync(port, "serving_batch_size");

    private static Task<string> ScrapeAsync(HttpClient http, int port) => http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics"));

    /// <summary>
    /// The sum of the samples named <paramref name="name"/> in a scrape whose labels contain each of
    /// <paramref name="labels"/> (0 when none).
    /// </summary>
    private static double SumOf(string scrape, string name, params string[] labels) =>
        SampleLine().Matches(scrape)
            .Where(m => m.Groups["name"].ValueSpan.SequenceEqual(name) && labels.All(l => m.Groups["labels"].Value.Contains(l, StringComparison.Ordinal)))
            .Sum(m => double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture));

    /// <summary>One sample of a Prometheus text scrape: its name, its labels as written, its value.</summary>
    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?<labels>[^}]*)\})? (?<value>\S+)$""", RegexOptions.Multiline)]
    private static partial Regex SampleLine();

    /// <summary>Jobs the worker ended so far, any outcome (<c>serving_worker_jobs_total</c> over its labels).</summary>
    private static async Task<double> JobsEndedAsync(HttpClient http, int port) =>
        SumOf(await ScrapeAsync(http, port).ConfigureAwait(false), "serving_worker_jobs_total");

    /// <summary>
    /// Reads the worker's count of ended jobs every 100 ms until it reaches <paramref name="target"/> (or
    /// stops moving for 10 s), then the CPU of <paramref name="profile"/> so far.
    /// </summary>
    private static async Task<CpuSplit> UntilEndedAsync(HttpClient http, int port, double target, CpuProfile profile)
    {
        await WaitEndedAsync(http, port, target).ConfigureAwait(false);
        return profile.Stop();
    }

    /// <summary>Reads the worker's count of ended jobs every 100 ms until it reaches <paramref name="target"/> (or stops moving for 10 s).</summary>
    private static async Task WaitEndedAsync(HttpClient http, int port, double target)
    {
        var (last, lastMoved) = (-1.0, System.Diagnostics.Stopwatch.GetTimestamp());
        while (await JobsEndedAsync(http, port).ConfigureAwait(false) is var ended && ended < target)
        {
            if (ended != last)
            {
                (last, lastMoved) = (ended, System.Diagnostics.Stopwatch.GetTimestamp());
            }
            else if (System.Diagnostics.Stopwatch.GetElapsedTime(lastMoved) > TimeSpan.FromSeconds(10))
            {
                break;
            }

            await Task.Delay(100).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// From one scrape of each process: the jobs the worker ended so far, the work items the API's and
    /// the worker's thread pools have run so far (<c>dotnet_threadpool_completed_items_total</c>), the
    /// API's job messages, the sums and counts of its submits' durations and sends, and its GC pauses.
    /// </summary>
    private async Task<Counters> CountersAsync(HttpClient http, int workerPort)
    {
        var worker = await ScrapeAsync(http, workerPort).ConfigureAwait(false);
        var api = await ScrapeAsync(http, _apiManagementPort).ConfigureAwait(false);
        return new Counters(SumOf(worker, "serving_worker_jobs_total"), new(StringComparer.Ordinal)
        {
            ["api"] = SumOf(api, "dotnet_threadpool_completed_items_total"),
            ["worker"] = SumOf(worker, "dotnet_threadpool_completed_items_total"),
        }, SumOf(api, "serving_api_job_messages_total"),
            (SumOf(api, "http_request_duration_seconds_sum", SubmitLabels), SumOf(api, "http_request_duration_seconds_count", SubmitLabels)),
            (SumOf(api, "serving_api_job_send_seconds_sum"), SumOf(api, "serving_api_job_send_seconds_count")),
            SumOf(api, "dotnet_gc_pause_seconds_total"));
    }

    // The submits answered 202 (POST /v1/jobs), as ASP.NET Core's HTTP metrics time them: from the
    // request's first middleware to its response, so without the wait in the kernel and Kestrel before it.
    private static readonly string[] SubmitLabels = ["code=\"202\",method=\"POST\"", "endpoint=\"/v1/jobs/\""];

    /// <summary>Sum and count of a histogram labelled by <c>model</c> alone, per label, from the worker's /metrics.</summary>
    private static async Task<IReadOnlyDictionary<string, (double Sum, double Count)>> HistogramAsync(int port, string metric)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var text = await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics")).ConfigureAwait(false);
        var figures = new Dictionary<string, (double Sum, double Count)>(StringComparer.Ordinal);
        foreach (Match match in HistogramLine().Matches(text))
        {
            if (match.Groups["metric"].Value != metric)
            {
                continue;
            }

            var label = match.Groups["model"].Value;
            var value = double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture);
            var old = figures.GetValueOrDefault(label);
            figures[label] = match.Groups["kind"].Value == "sum" ? (value, old.Count) : (old.Sum, value);
        }

        return figures;
    }

    [GeneratedRegex("""^(?<metric>[a-z_]+)_(?<kind>sum|count)\{model="(?<model>[^"]+)"\} (?<value>\S+)$""", RegexOptions.Multiline)]
    private static partial Regex HistogramLine();

    private HttpClient Management()
    {
        var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{options.RabbitManagementPort}"), Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.ASCII.GetBytes("guest:guest")));
        return http;
    }

    private async Task<long?> QueueDepthAsync(string queue)
    {
        try
        {
            using var http = Management();
            // The management API refreshes its counters every few seconds.
            await Task.Delay(5500).ConfigureAwait(false);
            using var json = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync(new Uri($"/api/queues/%2F/{queue}", UriKind.Relative)).ConfigureAwait(false));
            return json.RootElement.TryGetProperty("messages", out var m) ? m.GetInt64() : null;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    /// <summary>Empties (start) or deletes (end) the benchmark's queues through the management API; best effort.</summary>
    private async Task PurgeQueuesAsync(bool delete)
    {
        try
        {
            using var http = Management();
            foreach (var (model, version) in BenchRepository.Models)
            {
                foreach (var queue in Messaging.JobQueues.Lanes($"infer-{model}-{version}").SelectMany(l => new[] { l.Queue, l.Queue + "_error", l.Queue + "_skipped" }))
                {
                    var path = delete ? $"/api/queues/%2F/{queue}" : $"/api/queues/%2F/{queue}/contents";
                    using var response = await http.DeleteAsync(new Uri(path, UriKind.Relative)).ConfigureAwait(false);
                    if (delete)
                    {
                        using var exchange = await http.DeleteAsync(new Uri($"/api/exchanges/%2F/{queue}", UriKind.Relative)).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (HttpRequestException ex)
        {
            Console.WriteLine($"  RabbitMQ management API not reachable ({ex.Message}); bench queues left as they are");
        }
    }

    /// <summary>Removes every job this run created, and the heartbeats of its workers, from the shared Redis.</summary>
    private async Task DeleteJobsAsync()
    {
        if (_redis is null)
        {
            return;
        }

        var db = _redis.GetDatabase();
        foreach (var chunk in _jobIds.Chunk(500))
        {
            // A job's keys share a slot; different jobs' keys need not (Redis Cluster), so one DEL per job, pipelined.
            await Task.WhenAll(chunk.Select(id => db.KeyDeleteAsync([RedisJobStore.JobKey(id), RedisJobStore.ResultKey(id), RedisJobStore.InputKey(id)]))).ConfigureAwait(false);
            // And their entries in the tenant's index: left there, every run would leave tens of thousands
            // behind, and each later submit's ZADD into a set of hundreds of thousands costs several times more.
            await db.SortedSetRemoveAsync(RedisJobStore.TenantIndexKey(BenchTenant), [.. chunk.Select(id => (RedisValue)id)]).ConfigureAwait(false);
        }

        foreach (var (model, version) in BenchRepository.Models)
        {
            await db.KeyDeleteAsync([$"model-workers:{model}@{version}", $"model-providers:{model}@{version}"]).ConfigureAwait(false);
        }
    }

    private static double Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? 0 : Math.Round(sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)], 2);

    private static string Num(double? value) => value is { } v ? v.ToString("F2", CultureInfo.InvariantCulture) : "n/a";

    private static string Mib(long? bytes) => bytes is { } b ? $"{b / 1048576.0:F0} MiB" : "n/a";
}
