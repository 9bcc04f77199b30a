using System.Globalization;
using System.Text.Json;

namespace Async.Serving.Benchmark;

internal sealed record MachineInfo(int Cores, string CpuModel, long MemoryBytes, string Os, string Runtime, string LoadAverageAtStart);

internal sealed record BenchSummary(
    MachineInfo Machine, DateTimeOffset FinishedAt, int ResNetJobs, int TrivialJobs, int QueuedJobs, int Concurrency,
    InProcessResult InProcess, EndToEndFigure BatchingOn, EndToEndFigure BatchingOff, EndToEndFigure Orchestration, MemoryFigure Memory,
    OcrFigure? Ocr, OcrFigure? OcrDetectionOneAtATime, VideoFigure? Video, PriorityFigure? Priorities = null, CacheFigure? Cache = null,
    BaselineFigure? Baseline = null)
{
    public double ModelBoundRatio => Math.Round(BatchingOn.JobsPerSecond / InProcess.Best.ImagesPerSecond, 3);
}

internal static class Machine
{
    public static MachineInfo Describe()
    {
        var cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        var memKb = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
        return new MachineInfo(Environment.ProcessorCount, cpu, long.Parse(memKb, CultureInfo.InvariantCulture) * 1024,
            System.Runtime.InteropServices.RuntimeInformation.OSDescription,
            System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription, LoadAverage);
    }

    public static string LoadAverage { get; } = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";
}

/// <summary>summary.json and the table printed at the end, each figure beside its limit or goal.</summary>
internal static class Report
{
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    public static void Write(BenchSummary s, string outDir)
    {
        var path = Path.Combine(outDir, "summary.json");
        var goals = new
        {
            model_bound_ratio = new { value = s.ModelBoundRatio, goal = 0.9, met = s.ModelBoundRatio >= 0.9 },
            in_process_decode_ratio = new { value = s.InProcess.DecodeRatio, goal = 0.8, met = s.InProcess.DecodeRatio >= 0.8 },
            orchestration_jobs_per_second = new { value = s.Orchestration.JobsPerSecond, goal = 2000, met = s.Orchestration.JobsPerSecond >= 2000, cores = s.Machine.Cores },
        };
        File.WriteAllText(path, JsonSerializer.Serialize(new { summary = s, in_process_best = s.InProcess.Best, goals }, Json));
        Console.WriteLine($"wrote {path}");
    }

    public static void Print(BenchSummary s)
    {
        var rows = new List<(string Figure, string Value, string Goal)>();
        foreach (var b in s.InProcess.Batches)
        {
            rows.Add(($"in-process ResNet-18, batch {b.BatchSize} ({s.InProcess.Provider})", $"{b.ImagesPerSecond:F1} img/s", b == s.InProcess.Best ? "= the limit (best batch)" : "-"));
        }

        if (s.InProcess.ReadyBest is { } ready)
        {
            rows.Add(($"ONNX Runtime alone, ready tensors, best batch ({ready.BatchSize})", $"{ready.ImagesPerSecond:F1} img/s",
                $"with decode / alone = {s.InProcess.DecodeRatio:F2}; goal >= 0.8 {Met(s.InProcess.DecodeRatio >= 0.8)}"));
        }

        var limit = s.InProcess.Best.ImagesPerSecond;
        rows.Add(($"e2e image.embed, batching on (N={s.ResNetJobs})", $"{s.BatchingOn.JobsPerSecond:F1} jobs/s", $"limit {limit:F1}; goal >= {0.9 * limit:F1}"));
        rows.Add(("  model-bound ratio e2e / limit", $"{s.ModelBoundRatio:F3}", $"goal >= 0.9 {Met(s.ModelBoundRatio >= 0.9)}"));
        rows.Add(("  mean batch size, batching on", Num(s.BatchingOn.MeanBatchSize), $"max_batch_size 8"));
        rows.Add(($"e2e image.embed, batching off (N={s.ResNetJobs})", $"{s.BatchingOff.JobsPerSecond:F1} jobs/s", $"on/off = {s.BatchingOn.JobsPerSecond / Math.Max(0.001, s.BatchingOff.JobsPerSecond):F2}x"));
        rows.Add(("  mean batch size, batching off", Num(s.BatchingOff.MeanBatchSize), "max_batch_size 1"));
        rows.Add(($"orchestration, trivial model (N={s.TrivialJobs}, {s.Concurrency} clients)", $"{s.Orchestration.JobsPerSecond:F0} jobs/s",
            $"goal >= 2000 on 2 cores {Met(s.Orchestration.JobsPerSecond >= 2000)} (gap {Math.Max(0, 2000 - s.Orchestration.JobsPerSecond):F0})"));
        rows.Add(("  submit latency p50 / p99", $"{s.Orchestration.SubmitP50Ms:F1} / {s.Orchestration.SubmitP99Ms:F1} ms", "-"));
        rows.Add(("  mean batch size, trivial", Num(s.Orchestration.MeanBatchSize), "max_batch_size 64"));
        rows.Add(($"memory: API peak RSS ({s.QueuedJobs} queued)", Mib(s.Memory.ApiPeakRssBytes), $"RSS now {Mib(s.Memory.ApiRssBytesWithJobsQueued)}"));
        rows.Add(("memory: worker peak RSS (draining them)", Mib(s.Memory.WorkerPeakRssBytes), $"ResNet worker {Mib(s.BatchingOn.WorkerPeakRssBytes)}"));
        rows.Add(("memory: Redis bytes per finished job", $"{s.Memory.RedisBytesPerFinishedJob:F0} B", $"keys sampled {Num(s.Memory.RedisKeyBytesPerJobSampled)} B"));
        rows.Add(("  submit rate with no worker / drain rate", $"{s.Memory.SubmitPerSecond:F0} / {s.Memory.DrainJobsPerSecond:F0} jobs/s", "-"));
        if (s.Ocr is { } o)
        {
            var ocrLimit = o.InProcess is { } ip ? $"in-process {ip.LinesPerSecond:F1} lines/s ({ip.Parallelism} pages at a time); ratio {o.LinesPerSecond / Math.Max(0.001, ip.LinesPerSecond):F2}" : "in-process limit not measured";
            rows.Add(($"e2e image.ocr, printed pages (N={o.Jobs}, {o.Pages} distinct)", $"{o.LinesPerSecond:F1} lines/s", ocrLimit));
            rows.Add(("  jobs/s; lines returned / drawn (counts only)", $"{o.JobsPerSecond:F2} jobs/s", $"{o.LinesRead} / {o.LinesDrawn} lines; {o.Succeeded}/{o.Jobs} succeeded"));
            rows.Add(("  job latency p50 / p99 (submit to completed_at)", $"{o.JobP50Ms:F0} / {o.JobP99Ms:F0} ms", $"{o.ConcurrentJobs} jobs at a time in the worker"));
            rows.Add(("  recogniser mean batch size (all rec* buckets)", Num(o.RecMeanBatchSize), $"max_batch_size {o.MaxBatchSize}; in-process {Num(o.InProcess?.RecMeanBatchSize)}"));
            rows.Add(("  classifier mean batch size", Num(o.ClsMeanBatchSize), $"max_batch_size {o.MaxBatchSize}"));
            rows.Add(("  OCR worker peak RSS", Mib(o.WorkerPeakRssBytes), "-"));
            if (s.OcrDetectionOneAtATime is { } a)
            {
                rows.Add(("  pages/s, detection batched across jobs", $"{o.JobsPerSecond:F2} pages/s",
                    $"detection mean batch {Num(o.DetMeanBatchSize)} (OcrDetectionMaxBatch default; in-process {Num(o.InProcess?.DetMeanBatchSize)})"));
                rows.Add(("  pages/s, detection one image at a time", $"{a.JobsPerSecond:F2} pages/s",
                    $"detection mean batch {Num(a.DetMeanBatchSize)} (OcrDetectionMaxBatch 1); batched / alone {o.JobsPerSecond / Math.Max(0.001, a.JobsPerSecond):F2}x"));
                rows.Add(("  lines/s; job latency p50 / p99, one at a time", $"{a.LinesPerSecond:F1} lines/s", $"{a.JobP50Ms:F0} / {a.JobP99Ms:F0} ms; peak RSS {Mib(a.WorkerPeakRssBytes)}"));
            }
        }

        if (s.Video is { } v)
        {
            rows.Add(($"e2e video.analyze, {v.Jobs} × {v.VideoSeconds:F0} s at {v.SampleFps:G} fps, no OCR", $"{v.FramesPerSecond:F1} frames/s",
                $"in-process ResNet-18 limit {v.InProcessImagesPerSecond:F1} img/s (incl. JPEG decode); ratio {v.RatioToInProcess:F2}"));
            rows.Add(("  frames analysed / videos succeeded", $"{v.FramesAnalyzed} / {v.Succeeded}", $"{v.Jobs} submitted"));
            rows.Add(($"  mean batch size, {BenchRepository.ResNet}@1", Num(v.ResNetMeanBatchSize), "max_batch_size 8"));
            rows.Add(("  video worker peak RSS", Mib(v.WorkerPeakRssBytes),
                $"after warm-up {Mib(v.WorkerRssReadyBytes)}; one video's sampled frames, RGB24 at {v.Width}×{v.Height}: {Mib(v.SampledFramesRgbBytes)} (never held whole)"));
            if (v.Ocr is { } vo)
            {
                rows.Add(($"e2e video.analyze with OCR, 1 × {v.VideoSeconds:F0} s at {vo.SampleFps:G} fps", $"{vo.FramesPerSecond:F1} frames/s",
                    $"{vo.Status}, {vo.FramesAnalyzed} frames, {vo.TextSegments} text segments, rec mean batch {Num(vo.RecMeanBatchSize)}, peak RSS {Mib(vo.WorkerPeakRssBytes)}"));
            }
        }

        if (s.Priorities is { } p)
        {
            foreach (var lane in p.Mixed)
            {
                var same = p.Baseline.Single(b => b.Priority == lane.Priority);
                rows.Add(($"queue time p50 / p99, {lane.Priority} ({lane.Jobs} of a {p.Jobs}-job backlog)", $"{lane.QueueP50Ms:F0} / {lane.QueueP99Ms:F0} ms",
                    $"all normal: {same.QueueP50Ms:F0} / {same.QueueP99Ms:F0} ms"));
                rows.Add(($"  start into the drain p50 / p99, {lane.Priority}", $"{lane.DrainP50Ms:F0} / {lane.DrainP99Ms:F0} ms",
                    $"all normal: {same.DrainP50Ms:F0} / {same.DrainP99Ms:F0} ms"));
            }
        }

        if (s.Cache is { } c)
        {
            rows.AddRange(CacheScenario.Rows(c));
        }

        if (s.Baseline is { } baseline)
        {
            rows.AddRange(BaselineRows(baseline));
        }

        var w1 = rows.Max(r => r.Figure.Length) + 2;
        var w2 = rows.Max(r => r.Value.Length) + 2;
        Console.WriteLine();
        Console.WriteLine($"Async.Serving benchmark, {s.Machine.Cores} cores ({s.Machine.CpuModel}), {s.Machine.MemoryBytes / 1073741824.0:F0} GiB");
        Console.WriteLine($"{"figure".PadRight(w1)}{"value".PadRight(w2)}limit / goal");
        Console.WriteLine(new string('-', w1 + w2 + 40));
        foreach (var (figure, value, goal) in rows)
        {
            Console.WriteLine($"{figure.PadRight(w1)}{value.PadRight(w2)}{goal}");
        }
    }

    /// <summary>Rows of the baseline comparison: each level's throughput ratio and both sides' latency percentiles.</summary>
    private static IEnumerable<(string Figure, string Value, string Goal)> BaselineRows(BaselineFigure b)
    {
        foreach (var level in b.Levels)
        {
            var (x, y) = (level.Baseline, level.Serving);
            yield return ($"Async.Serving / naive baseline, {level.Clients} clients (N={b.RequestsPerLevel} each)", $"{level.ThroughputRatio:F2}x",
                $"{y.PerSecond:F1} jobs/s vs {x.PerSecond:F1} img/s");
            yield return ("  latency p50 / p95 / p99, baseline", $"{x.P50Ms:F0} / {x.P95Ms:F0} / {x.P99Ms:F0} ms", $"CPU {x.CpuMsPerImage:F0} ms per image");
            yield return ("  latency p50 / p95 / p99, Async.Serving (submit to result)", $"{y.P50Ms:F0} / {y.P95Ms:F0} / {y.P99Ms:F0} ms", $"CPU {y.CpuMsPerImage:F0} ms per image");
        }
    }

    /// <summary>The baseline comparison as a table of its own (<c>--only baseline</c>).</summary>
    public static void PrintBaseline(BaselineFigure b)
    {
        Console.WriteLine();
        Console.WriteLine($"naive baseline vs Async.Serving, {b.Model}, {b.RequestsPerLevel} requests per system and level; latency in ms");
        Console.WriteLine($"{"clients",7} {"baseline img/s",15} {"p50",6} {"p95",6} {"p99",6} {"CPU ms/img",11} {"Async.Serving jobs/s",21} {"p50",6} {"p95",6} {"p99",6} {"CPU ms/img",11} {"ratio",6}");
        foreach (var l in b.Levels)
        {
            var (x, y) = (l.Baseline, l.Serving);
            Console.WriteLine($"{l.Clients,7} {x.PerSecond,15:F1} {x.P50Ms,6:F0} {x.P95Ms,6:F0} {x.P99Ms,6:F0} {x.CpuMsPerImage,11:F0} {y.PerSecond,21:F1} {y.P50Ms,6:F0} {y.P95Ms,6:F0} {y.P99Ms,6:F0} {y.CpuMsPerImage,11:F0} {l.ThroughputRatio,6:F2}");
        }

        Console.WriteLine($"the same image through both: cosine {b.EmbeddingCosine:F6}, largest difference {b.EmbeddingMaxAbsDiff:E1}");
    }

    private static string Met(bool met) => met ? "MET" : "MISSED";

    private static string Num(double? value) => value is { } v ? v.ToString("F2", CultureInfo.InvariantCulture) : "n/a";

    private static string Mib(long? bytes) => bytes is { } b ? $"{b / 1048576.0:F0} MiB" : "n/a";
}
