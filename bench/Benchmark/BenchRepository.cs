using System.Text.Json;
using System.Text.Json.Nodes;

namespace Async.Serving.Benchmark;

/// <summary>
/// A temporary model repository with the benchmark's own model names, so its queues
/// (<c>infer-bench-*</c>) never meet a worker that serves the real repository.
/// </summary>
internal static class BenchRepository
{
    public const string ResNet = "bench-resnet18";
    public const string ResNetNoBatch = "bench-resnet18-nobatch";
    public const string Trivial = "bench-trivial";

    public static readonly string[] Models = [ResNet, ResNetNoBatch, Trivial];

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static string Create(string modelsDir)
    {
        var source = Path.Combine(modelsDir, "resnet18", "1");
        var weights = Path.Combine(source, "model.onnx");
        if (!File.Exists(weights))
        {
            throw new FileNotFoundException($"{weights} is missing: run scripts/fetch-models.sh.", weights);
        }

        var root = Path.Combine(Path.GetTempPath(), $"async-serving-bench-{Environment.ProcessId}");
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")), documentOptions: new JsonDocumentOptions
        {
            CommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
        })!.AsObject();

        AddResNet(root, ResNet, config, weights);
        var unbatched = config.DeepClone().AsObject();
        unbatched["max_batch_size"] = 1;
        AddResNet(root, ResNetNoBatch, unbatched, weights);

        var trivial = Path.Combine(root, Trivial, "1");
        TrivialModel.Write(Path.Combine(trivial, "model.onnx"));
        File.WriteAllText(Path.Combine(trivial, "config.json"), """
            {
              "pipeline": "image.embed",
              "input": { "name": "image", "shape": [3, 8, 8] },
              "output": { "name": "embedding", "shape": [3] },
              "preprocessing": { "width": 8, "height": 8, "resize": "stretch" },
              "l2_normalize": false,
              "max_batch_size": 64,
              "max_queue_delay_ms": 2,
              "instances": 1,
              "execution_provider": "cpu"
            }
            """);
        return root;
    }

    private static void AddResNet(string root, string name, JsonObject config, string weights)
    {
        var dir = Path.Combine(root, name, "1");
        Directory.CreateDirectory(dir);
        File.CreateSymbolicLink(Path.Combine(dir, "model.onnx"), Path.GetFullPath(weights));
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(Indented));
    }
}
