using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Async.Serving.Fixtures;
using Async.Serving.Models;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Inference;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Async.Serving.Benchmark;

internal sealed record DeviceBatchFigure(int BatchSize, int Runs, int Images, double Seconds, double ImagesPerSecond, double MsPerBatch, double GainOverBatch1);

/// <summary>One model file (FP32, or FP16 when a converted file is at hand) swept over the batch sizes.</summary>
internal sealed record DeviceModelFigure(string Precision, string ModelFile, string Provider, IReadOnlyList<DeviceBatchFigure> Batches)
{
    public DeviceBatchFigure Best => Batches.MaxBy(b => b.ImagesPerSecond)!;
}

/// <summary>Decode and preprocessing of one size of JPEG into the model's input, on every core at once.</summary>
internal sealed record DecodeFigure(int Width, int Height, double Megapixels, int DistinctImages, int Images, int Threads, double ImagesPerSecond, double CpuMsPerImage);

internal sealed record DeviceFigure(
    MachineInfo Machine, DateTimeOffset FinishedAt, string OnnxRuntime, string Model, IReadOnlyList<DeviceModelFigure> Models, string? Fp16Absent,
    IReadOnlyList<DecodeFigure> Decode);

/// <summary>
/// <c>--only device</c>, the GPU kit's benchmark (scripts/gpu-kit.sh): ONNX Runtime alone with ready
/// tensors at each batch size, on the provider the model's config prefers (CUDA for ResNet-18) through
/// the worker's own session factory, so CPU when CUDA does not load, and said so; then JPEG decode and
/// preprocessing (the worker's <see cref="ImagePreprocessor"/>) on all cores, the other half of what a
/// GPU worker needs. Needs only a model repository: no services, no solution folder.
/// </summary>
internal static class DeviceBench
{
    public const string Fp16File = "model.fp16.onnx";

    private static readonly (int Width, int Height)[] DecodeSizes = [(640, 480), (1280, 960), (4000, 3000)];

    public static DeviceFigure Run(BenchOptions options)
    {
        var entry = ModelRepository.Load(options.ModelsDir, requireWeights: true).Resolve(options.DeviceModel)
            ?? throw new ArgumentException($"Model '{options.DeviceModel}' is not in {options.ModelsDir}.");
        var version = OrtEnv.Instance().GetVersionString();
        Console.WriteLine($"device benchmark: {entry.Id} ({entry.ModelPath}), ONNX Runtime {version}, {Environment.ProcessorCount} CPU cores; preferred provider: {entry.Config.ExecutionProvider}");

        using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true));
        var factory = new OnnxSessionFactory(new WorkerOptions(), loggers.CreateLogger<OnnxSessionFactory>());

        // Ready tensors: a few real photos preprocessed once, repeated through each batch.
        var config = entry.Config;
        var length = config.Input.Shape.Aggregate(1, (a, b) => a * b);
        var samples = BenchImages.Photos(8).Select(p =>
        {
            var planes = new float[length];
            ImagePreprocessor.Preprocess(p, config.Preprocessing, long.MaxValue, planes);
            return planes;
        }).ToList();

        var models = new List<DeviceModelFigure> { Sweep("FP32", entry.ModelPath, entry, factory, samples, options) };
        string? fp16Absent = null;
        var fp16 = Path.Combine(entry.Directory, Fp16File);
        if (File.Exists(fp16))
        {
            models.Add(Sweep("FP16", fp16, entry, factory, samples, options));
        }
        else
        {
            fp16Absent = $"no FP16 model at {fp16}: scripts/gpu-kit.sh packs one when models/{entry.Name}/{entry.Version}/{Fp16File} exists, and the kit's run.sh converts one on the host when its python3 has onnx and onnxconverter-common";
            Console.WriteLine($"FP16: {fp16Absent}");
        }

        var decode = Decode(config.Preprocessing, options);
        var best = models[0].Best;
        foreach (var d in decode)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"decode of {d.Width}×{d.Height} JPEGs on {d.Threads} threads feeds {d.ImagesPerSecond / best.ImagesPerSecond:F2}× the best FP32 rate ({best.ImagesPerSecond:F0} img/s at batch {best.BatchSize}, {models[0].Provider})"));
        }

        var figure = new DeviceFigure(Machine.Describe(), DateTimeOffset.UtcNow, version, entry.Id, models, fp16Absent, decode);
        Directory.CreateDirectory(options.OutDir);
        var path = Path.Combine(options.OutDir, "device.json");
        File.WriteAllText(path, JsonSerializer.Serialize(figure, Report.Json));
        Console.WriteLine($"wrote {path}");
        return figure;
    }

    private static DeviceModelFigure Sweep(string precision, string modelPath, ModelEntry entry, OnnxSessionFactory factory, List<float[]> samples, BenchOptions options)
    {
        var (session, provider) = factory.Create(modelPath, entry.Config.ExecutionProvider);
        using (session)
        {
            Console.WriteLine(provider == "cuda"
                ? $"{precision}: provider CUDA"
                : $"{precision}: provider CPU{(entry.Config.ExecutionProvider == "cuda" ? " (CUDA did not load: see the lines above; THESE ARE CPU FIGURES)" : "")}");
            var inputName = entry.Config.Input.Name;
            var half = session.InputMetadata[inputName].ElementDataType == TensorElementType.Float16;
            long[] itemShape = [.. entry.Config.Input.Shape.Select(d => (long)d)];
            var length = samples[0].Length;
            using var runOptions = new RunOptions();
            var figures = new List<DeviceBatchFigure>();
            foreach (var size in options.DeviceBatches)
            {
                var floats = new float[size * length];
                for (var k = 0; k < size; k++)
                {
                    samples[k % samples.Count].CopyTo(floats, k * length);
                }

                using var input = half
                    ? OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, floats.Select(f => (Float16)f).ToArray().AsMemory(), [size, .. itemShape])
                    : OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, floats.AsMemory(), [size, .. itemShape]);
                void RunOnce()
                {
                    using var results = session.Run(runOptions, [inputName], [input], [entry.Config.Output.Name]);
                    _ = results[0].GetTensorTypeAndShape().ElementCount;
                }

                RunOnce(); // warm-up: the first run at a shape picks kernels (cuDNN searches) and allocates
                RunOnce();
                var runs = 0;
                var started = Stopwatch.GetTimestamp();
                while (runs < 3 || Stopwatch.GetElapsedTime(started).TotalSeconds < options.DeviceSeconds)
                {
                    RunOnce();
                    runs++;
                }

                var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                var perSecond = runs * size / seconds;
                var gain = figures.Count > 0 && figures[0].BatchSize == 1 ? perSecond / figures[0].ImagesPerSecond : (size == 1 ? 1 : double.NaN);
                figures.Add(new DeviceBatchFigure(size, runs, runs * size, Math.Round(seconds, 3), Math.Round(perSecond, 1),
                    Math.Round(seconds * 1000 / runs, 2), Math.Round(gain, 2)));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {precision} batch {size,3}: {perSecond,9:F1} img/s  ({seconds * 1000 / runs,8:F2} ms a batch, {runs} runs)  gain over batch 1: {(double.IsNaN(gain) ? "n/a" : gain.ToString("F2", CultureInfo.InvariantCulture) + "x")}"));
            }

            return new DeviceModelFigure(precision, Path.GetFileName(modelPath), provider, figures);
        }
    }

    /// <summary>
    /// Every core decodes and preprocesses JPEGs of one size into the model's input for
    /// <c>--device-seconds</c> (at least two rounds over the distinct images); img/s and CPU ms per image.
    /// </summary>
    private static List<DecodeFigure> Decode(PreprocessingConfig preprocessing, BenchOptions options)
    {
        var threads = Environment.ProcessorCount;
        var length = 3 * preprocessing.Width * preprocessing.Height;
        var figures = new List<DecodeFigure>();
        Console.WriteLine($"decode + preprocess (JPEG to {preprocessing.Width}×{preprocessing.Height} planes, the worker's ImagePreprocessor) on {threads} threads:");
        foreach (var (width, height) in DecodeSizes)
        {
            var megapixels = width * height / 1e6;
            // Fewer distinct large photos: drawing a 12 MP scene costs more than decoding it.
            var distinct = Math.Max(2, megapixels > 4 ? options.DecodeImages / 8 : options.DecodeImages);
            var jpegs = new byte[distinct][];
            Parallel.For(0, distinct, i => jpegs[i] = SceneImages.Scene(2000 + i, width, height));
            var minimum = 2 * distinct;
            var next = -1;
            var done = 0;
            var process = Process.GetCurrentProcess();
            var cpuBefore = process.TotalProcessorTime;
            var started = Stopwatch.GetTimestamp();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ =>
            {
                var planes = new float[length];
                int i;
                while ((i = Interlocked.Increment(ref next)) < minimum || Stopwatch.GetElapsedTime(started).TotalSeconds < options.DeviceSeconds)
                {
                    ImagePreprocessor.Preprocess(jpegs[i % distinct], preprocessing, long.MaxValue, planes);
                    Interlocked.Increment(ref done);
                }
            });
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            process.Refresh();
            var cpu = (process.TotalProcessorTime - cpuBefore).TotalMilliseconds;
            var figure = new DecodeFigure(width, height, Math.Round(megapixels, 1), distinct, done, threads, Math.Round(done / seconds, 1), Math.Round(cpu / done, 2));
            figures.Add(figure);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {width}×{height} ({figure.Megapixels:F1} MP, {jpegs.Average(j => j.Length) / 1024:F0} KiB): {figure.ImagesPerSecond,8:F1} img/s, {figure.CpuMsPerImage:F2} CPU ms per image ({done} images)"));
        }

        return figures;
    }
}
