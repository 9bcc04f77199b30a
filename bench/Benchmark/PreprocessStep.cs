using System.Globalization;
using System.Text.Json;
using Async.Serving.Models;

namespace Async.Serving.Benchmark;

/// <summary>
/// <c>--only preprocess</c>: what preprocessing costs, without services. CPU ms per image of real
/// photographs at 0.3, 1.2 and 12 MP before and now (<see cref="PreprocessCost"/>), then step 1's
/// in-process limit with decode beside ONNX Runtime alone on ready tensors. Writes preprocess.json.
/// </summary>
internal static class PreprocessStep
{
    public static void Run(BenchOptions options)
    {
        Directory.CreateDirectory(options.OutDir);
        var entry = ModelRepository.Load(options.ModelsDir, requireWeights: true).Resolve("resnet18")
            ?? throw new InvalidOperationException($"{options.ModelsDir} has no resnet18 model: run scripts/fetch-models.sh.");
        Console.WriteLine($"P1. CPU per image on one thread, real photographs as JPEG (quality 90), to {entry.Config.Preprocessing.Width}×{entry.Config.Preprocessing.Height} {entry.Config.Preprocessing.Resize}");
        var cost = PreprocessCost.Run(entry.Config.Preprocessing, TimeSpan.FromSeconds(1.5));
        var photos = BenchImages.Photos(64);
        Console.WriteLine($"P2. in-process limit with decode vs ONNX Runtime alone ({photos.Count} JPEGs as in step 1, {options.InProcessImages} images per batch size)");
        var inProcess = InProcessLimit.Run(entry, photos, [1, 4, 8, 16], options.InProcessImages, 50_000_000);
        var path = Path.Combine(options.OutDir, "preprocess.json");
        File.WriteAllText(path, JsonSerializer.Serialize(new { machine = Machine.Describe(), cost, in_process = inProcess, in_process_best = inProcess.Best, ready_best = inProcess.ReadyBest, decode_ratio = inProcess.DecodeRatio },
            new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {path}"));
    }
}
