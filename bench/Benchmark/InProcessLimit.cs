using System.Diagnostics;
using Async.Serving.Models;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Inference;
using Async.Serving.Worker.Ocr;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;

namespace Async.Serving.Benchmark;

internal sealed record BatchFigure(int BatchSize, int Images, double ImagesPerSecond, double DecodeMsPerImage, double InferenceMsPerImage);

/// <summary>
/// <see cref="Batches"/>: decode, preprocess and inference per batch size; <see cref="ReadyTensors"/>: the
/// same batches through ONNX Runtime alone, their input tensors already filled (what the model does
/// when preprocessing costs nothing).
/// </summary>
internal sealed record InProcessResult(string Provider, int IntraOpThreads, IReadOnlyList<BatchFigure> Batches, IReadOnlyList<BatchFigure>? ReadyTensors = null)
{
    public BatchFigure Best => Batches.MaxBy(b => b.ImagesPerSecond)!;

    public BatchFigure? ReadyBest => ReadyTensors?.MaxBy(b => b.ImagesPerSecond);

    /// <summary>Best with decode ÷ best with ready tensors: how much of the model's throughput preprocessing leaves (goal ≥ 0.8).</summary>
    public double? DecodeRatio => ReadyBest is { } ready ? Math.Round(Best.ImagesPerSecond / ready.ImagesPerSecond, 3) : null;
}

/// <summary>In-process OCR: pages read by <see cref="OcrModel"/> with the worker's parallelism, and the recogniser's mean batch.</summary>
internal sealed record OcrInProcessFigure(
    int Pages, int Parallelism, double PagesPerSecond, double LinesPerSecond, int LinesRead, double? RecMeanBatchSize, double? DetMeanBatchSize);

/// <summary>
/// The model-bound limit: what one process does with the worker's own code and settings and no
/// queue in between. Each batch is decoded and preprocessed in parallel over the cores (the worker
/// runs as many consumers at once), then run by ONNX Runtime with the worker's session options.
/// Then the same batches again through ONNX Runtime alone, with tensors already filled: the ratio
/// of the two is what decoding and preprocessing cost the model-bound limit.
/// </summary>
internal static class InProcessLimit
{
    public static InProcessResult Run(ModelEntry entry, IReadOnlyList<byte[]> photos, int[] batchSizes, int imagesPerSize, long maxPixels)
    {
        var (session, provider) = CreateSession(entry);
        using (session)
        {
            var config = entry.Config;
            var length = config.Input.Shape.Aggregate(1, (a, b) => a * b);
            long[] itemShape = [.. config.Input.Shape.Select(d => (long)d)];
            var figures = new List<BatchFigure>();
            var ready = new List<BatchFigure>();
            using var runOptions = new RunOptions();
            foreach (var size in batchSizes)
            {
                var inputs = new float[size * length];
                void RunBatch(int first, ref long decodeTicks, ref long inferTicks, bool decode = true)
                {
                    var began = Stopwatch.GetTimestamp();
                    if (decode)
                    {
                        Parallel.For(0, size, k => ImagePreprocessor.Preprocess(
                            photos[(first + k) % photos.Count], config.Preprocessing, maxPixels, inputs.AsSpan(k * length, length)));
                    }

                    var decoded = Stopwatch.GetTimestamp();
                    using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, inputs.AsMemory(), [size, .. itemShape]);
                    using var results = session.Run(runOptions, [config.Input.Name], [input], [config.Output.Name]);
                    _ = results[0].GetTensorDataAsSpan<float>()[0];
                    decodeTicks += decoded - began;
                    inferTicks += Stopwatch.GetTimestamp() - decoded;
                }

                long ignoreDecode = 0, ignoreInfer = 0;
                RunBatch(0, ref ignoreDecode, ref ignoreInfer); // warm-up at this shape
                var batches = Math.Max(1, imagesPerSize / size);
                long decodeTicks = 0, inferTicks = 0;
                var started = Stopwatch.GetTimestamp();
                for (var b = 0; b < batches; b++)
                {
                    RunBatch(b * size, ref decodeTicks, ref inferTicks);
                }

                var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                var images = batches * size;
                figures.Add(new BatchFigure(size, images, Math.Round(images / seconds, 2),
                    Math.Round(decodeTicks * 1000.0 / Stopwatch.Frequency / images, 2),
                    Math.Round(inferTicks * 1000.0 / Stopwatch.Frequency / images, 2)));
                Console.WriteLine($"  in-process batch {size,2}: {images / seconds,7:F1} images/s  (decode+preprocess {figures[^1].DecodeMsPerImage:F1} ms/image wall, inference {figures[^1].InferenceMsPerImage:F1} ms/image)");

                // The same batches with the tensors as the last batch left them: ONNX Runtime alone.
                long readyDecode = 0, readyInfer = 0;
                started = Stopwatch.GetTimestamp();
                for (var b = 0; b < batches; b++)
                {
                    RunBatch(b * size, ref readyDecode, ref readyInfer, decode: false);
                }

                seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                ready.Add(new BatchFigure(size, images, Math.Round(images / seconds, 2), 0,
                    Math.Round(readyInfer * 1000.0 / Stopwatch.Frequency / images, 2)));
                Console.WriteLine($"  ONNX Runtime alone, ready tensors, batch {size,2}: {images / seconds,7:F1} images/s");
            }

            var result = new InProcessResult(provider, 0, figures, ready);
            Console.WriteLine($"  best with decode {result.Best.ImagesPerSecond:F1} img/s (batch {result.Best.BatchSize}), ONNX Runtime alone {result.ReadyBest!.ImagesPerSecond:F1} img/s (batch {result.ReadyBest.BatchSize}): ratio {result.DecodeRatio:F2} (goal >= 0.8)");
            return result;
        }
    }

    /// <summary>
    /// The OCR limit: the worker's <see cref="OcrModel"/> (built with the worker's session factory,
    /// warmed as the worker warms it) reads <paramref name="count"/> of the pages, decode included,
    /// <paramref name="parallelism"/> at a time (the model's <c>concurrent_jobs</c>, as the worker runs them),
    /// after one untimed round of that many pages.
    /// </summary>
    public static async Task<OcrInProcessFigure> OcrAsync(ModelEntry entry, IReadOnlyList<byte[]> pages, int count, long maxPixels)
    {
        var model = new OcrModel(entry, new OnnxSessionFactory(new WorkerOptions(), NullLogger<OnnxSessionFactory>.Instance));
        await using (model.ConfigureAwait(false))
        {
            model.WarmUp();
            var parallelism = entry.Config.Ocr!.ConcurrentJobs;
            var lines = 0;
            async Task ReadAsync(int from, int n)
            {
                await Parallel.ForEachAsync(Enumerable.Range(from, n), new ParallelOptions { MaxDegreeOfParallelism = parallelism }, async (i, ct) =>
                {
                    var image = RgbImage.Decode(pages[i % pages.Count], maxPixels);
                    var result = await model.ReadAsync(image, ct).ConfigureAwait(false);
                    Interlocked.Add(ref lines, result.Lines.Count);
                }).ConfigureAwait(false);
            }

            await ReadAsync(0, parallelism).ConfigureAwait(false);
            lines = 0;
            var recognisers = model.Batchers.Where(b => b.Name.Contains("/rec", StringComparison.Ordinal)).ToList();
            var (batches, items) = (recognisers.Sum(b => b.Batches), recognisers.Sum(b => b.Items));
            var (detBatches, detItems) = (model.Detector.Batches, model.Detector.Items);
            var started = Stopwatch.GetTimestamp();
            await ReadAsync(parallelism, count).ConfigureAwait(false);
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var deltaBatches = recognisers.Sum(b => b.Batches) - batches;
            var figure = new OcrInProcessFigure(count, parallelism, Math.Round(count / seconds, 2), Math.Round(lines / seconds, 1), lines,
                deltaBatches > 0 ? Math.Round((double)(recognisers.Sum(b => b.Items) - items) / deltaBatches, 2) : null,
                model.Detector.Batches > detBatches ? Math.Round((double)(model.Detector.Items - detItems) / (model.Detector.Batches - detBatches), 2) : null);
            Console.WriteLine($"  in-process OCR: {figure.PagesPerSecond:F2} pages/s, {figure.LinesPerSecond:F1} lines/s ({lines} lines from {count} pages, {parallelism} at a time, {seconds:F1} s), mean batch: detection {figure.DetMeanBatchSize?.ToString("F2", System.Globalization.CultureInfo.InvariantCulture) ?? "n/a"}, recogniser {figure.RecMeanBatchSize?.ToString("F2", System.Globalization.CultureInfo.InvariantCulture) ?? "n/a"}");
            return figure;
        }
    }

    /// <summary>The worker's own session factory with the worker's default options: the same provider choice and thread settings.</summary>
    private static (InferenceSession Session, string Provider) CreateSession(ModelEntry entry) =>
        new OnnxSessionFactory(new WorkerOptions(), NullLogger<OnnxSessionFactory>.Instance).Create(entry.ModelPath, entry.Config.ExecutionProvider);
}
