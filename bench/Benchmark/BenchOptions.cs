using System.Globalization;

namespace Async.Serving.Benchmark;

/// <summary>Command line and environment of one benchmark run.</summary>
internal sealed class BenchOptions
{
    public required string Root { get; init; }

    public required string ModelsDir { get; init; }

    public required string OutDir { get; init; }

    public int ResNetJobs { get; init; } = 600;

    public int TrivialJobs { get; init; } = 6000;

    public int QueuedJobs { get; init; } = 10_000;

    public int Concurrency { get; init; } = 32;

    public int InProcessImages { get; init; } = 64;

    /// <summary>OCR jobs of the <c>image.ocr</c> step (0 skips the step).</summary>
    public int OcrJobs { get; init; } = 48;

    /// <summary>Video jobs of the <c>video.analyze</c> step without OCR (0 skips the step).</summary>
    public int VideoJobs { get; init; } = 4;

    /// <summary>Jobs of each backlog of the priorities step (0 skips the step).</summary>
    public int PriorityJobs { get; init; } = 400;

    /// <summary>Requests per system at each number of clients of the baseline step (0 skips the step).</summary>
    public int BaselineJobs { get; init; } = 200;

    /// <summary><c>--only priorities|orchestration|baseline|device|preprocess|blobs</c>: run that step alone.</summary>
    public string? Only { get; init; }

    /// <summary><c>--trace-seconds S</c> with <c>--only orchestration</c>: dotnet-trace the API and the worker for S seconds of the load (0: no trace).</summary>
    public int TraceSeconds { get; init; }

    /// <summary>
    /// <c>--warm-up-jobs N</c>: trivial jobs run through the API and a fresh worker before step 3's timed
    /// load. The default is what both processes take to finish JIT tiering on 2 cores (about 20 s of
    /// compiling at the start; docs/benchmarks.md), so the step measures the steady state.
    /// </summary>
    public int WarmUpJobs { get; init; } = 20_000;

    /// <summary>
    /// ResNet-18 jobs through a fresh worker before each timed ResNet load (steps 2 and 4), in the
    /// same two rounds as <see cref="WarmUpJobs"/>: enough for the API's and the worker's photo path to
    /// reach their optimised tier, which 96 jobs were not (docs/benchmarks.md, "Seventh round").
    /// </summary>
    public int ResNetWarmUpJobs { get; init; } = 1_000;

    /// <summary><c>params.sample_fps</c> of those video jobs.</summary>
    public double VideoFps { get; init; } = 10;

    /// <summary>Jobs of the result cache step, once as misses (distinct inputs) and once as hits (the same inputs again); 0 skips it.</summary>
    public int CacheJobs { get; init; } = 3000;

    /// <summary><c>--only device</c>: the model (name or name@version) swept over <see cref="DeviceBatches"/>.</summary>
    public string DeviceModel { get; init; } = "resnet18";

    /// <summary><c>--only device</c>: batch sizes of the ONNX Runtime sweep.</summary>
    public int[] DeviceBatches { get; init; } = [1, 8, 32, 64, 128, 256];

    /// <summary><c>--only device</c>: least seconds of timed runs per batch size (and per JPEG size of the decode figure).</summary>
    public double DeviceSeconds { get; init; } = 3;

    /// <summary><c>--only device</c>: distinct JPEGs of each size for the decode figure.</summary>
    public int DecodeImages { get; init; } = 32;

    /// <summary>Videos of 50–100 MiB queued by the large-input step (docs/blobs.md); 0 skips it.</summary>
    public int BlobVideos { get; init; } = 20;

    /// <summary>
    /// Small jobs queued before the large-input step's videos (at least until every shard holds one):
    /// the backlog they join. Well over 128 per shard (3,200 in all: 200 on average, the fewest ~165), every index a job joins is a skip list
    /// (Redis's <c>zset-max-listpack-entries</c>), the costliest encoding per member.
    /// </summary>
    public int BlobBacklog { get; init; } = 3200;

    public string Redis { get; init; } = Env("ConnectionStrings__Redis", "127.0.0.1:6379");

    public string Postgres { get; init; } = Env("ConnectionStrings__Postgres", "Host=127.0.0.1;Port=5432;Username=postgres;Database=serving");

    public string RabbitHost { get; init; } = Env("Serving__RabbitMq__Host", "127.0.0.1");

    public string RabbitPort { get; init; } = Env("Serving__RabbitMq__Port", "5672");

    public string RabbitManagementPort { get; init; } = Env("SERVING_RABBIT_MGMT_PORT", "15672");

    public string Configuration { get; init; } = Env("SERVING_CONFIGURATION", "Release");

    /// <summary><c>--root DIR --out DIR --resnet-jobs N --trivial-jobs N --queued-jobs N --concurrency N --inprocess-images N
    /// --ocr-jobs N --video-jobs N --video-fps F --priority-jobs N --cache-jobs N --baseline-jobs N --blob-videos N
    /// --only priorities|orchestration|baseline|device|preprocess|blobs --trace-seconds S --warm-up-jobs N</c>, and for <c>device</c>
    /// <c>--device-batches 1,8,… --device-seconds S --decode-images N</c>.</summary>
    public static BenchOptions Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                throw new ArgumentException($"Unexpected argument '{args[i]}'.");
            }

            values[args[i][2..]] = args[i + 1];
        }

        if (args.Length % 2 != 0)
        {
            throw new ArgumentException($"Argument '{args[^1]}' has no value.");
        }

        var root = values.GetValueOrDefault("root") ?? FindRoot();
        int Int(string name, int fallback) => values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        return new BenchOptions
        {
            Root = root,
            ModelsDir = Environment.GetEnvironmentVariable("SERVING_MODELS_DIR") ?? Path.Combine(root, "models"),
            OutDir = values.GetValueOrDefault("out") ?? Path.Combine(root, "artifacts", "bench"),
            ResNetJobs = Int("resnet-jobs", 600),
            TrivialJobs = Int("trivial-jobs", 6000),
            QueuedJobs = Int("queued-jobs", 10_000),
            Concurrency = Int("concurrency", 32),
            InProcessImages = Int("inprocess-images", 64),
            OcrJobs = Int("ocr-jobs", 48),
            VideoJobs = Int("video-jobs", 4),
            PriorityJobs = Int("priority-jobs", 400),
            Only = values.GetValueOrDefault("only"),
            CacheJobs = Int("cache-jobs", 3000),
            BaselineJobs = Int("baseline-jobs", 200),
            DeviceModel = values.GetValueOrDefault("device-model") ?? "resnet18",
            DeviceBatches = values.TryGetValue("device-batches", out var batches)
                ? [.. batches.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(b => int.Parse(b, CultureInfo.InvariantCulture))]
                : [1, 8, 32, 64, 128, 256],
            DeviceSeconds = values.TryGetValue("device-seconds", out var ds) ? double.Parse(ds, CultureInfo.InvariantCulture) : 3,
            DecodeImages = Int("decode-images", 32),
            TraceSeconds = Int("trace-seconds", 0),
            WarmUpJobs = Int("warm-up-jobs", 20_000),
            ResNetWarmUpJobs = Int("resnet-warm-up-jobs", 1_000),
            BlobVideos = Int("blob-videos", 20),
            BlobBacklog = Int("blob-backlog", 3200),
            VideoFps = values.TryGetValue("video-fps", out var fps) ? double.Parse(fps, CultureInfo.InvariantCulture) : 10,
        };
    }

    /// <summary>The naive baseline's build (bench/Baseline).</summary>
    public string BaselineDll => Path.Combine(Root, "bench", "Baseline", "bin", Configuration, "net10.0", "Async.Serving.Baseline.dll");

    public string Dll(string project, string assembly) =>
        Path.Combine(Root, "src", project, "bin", Configuration, "net10.0", assembly + ".dll");

    private static string Env(string name, string fallback) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : fallback;

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Async.Serving.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Async.Serving.sln not found above the benchmark; pass --root.");
    }
}
