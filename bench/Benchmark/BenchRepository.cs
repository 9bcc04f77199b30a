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
    public const string Ocr = "bench-ppocr";
    public const string OcrVersion = "4";
    public const string Video = "bench-video";

    /// <summary>Every model of the repository with its version folder (queue <c>infer-{name}-{version}</c>).</summary>
    public static readonly (string Name, string Version)[] Models =
        [(ResNet, "1"), (ResNetNoBatch, "1"), (Trivial, "1"), (Ocr, OcrVersion), (Video, "1")];

    public static string OcrId => $"{Ocr}@{OcrVersion}";

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

        var config = ReadConfig(Path.Combine(source, "config.json"));

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

        AddOcr(root, Path.Combine(modelsDir, "ppocr", "4"));
        AddVideo(root, Path.Combine(modelsDir, "video", "1"));
        return root;
    }

    /// <summary><c>bench-ppocr@4</c>: links to the networks and dictionary of models/ppocr/4, its config copied.</summary>
    private static void AddOcr(string root, string source)
    {
        var config = ReadConfig(Path.Combine(source, "config.json"));
        var ocr = config["ocr"]!.AsObject();
        var dir = Path.Combine(root, Ocr, OcrVersion);
        Directory.CreateDirectory(dir);
        foreach (var field in new[] { "detection", "recognition", "classifier", "dictionary" })
        {
            var file = (string?)ocr[field];
            if (string.IsNullOrEmpty(file))
            {
                continue;
            }

            var target = Path.Combine(source, file);
            if (!File.Exists(target))
            {
                throw new FileNotFoundException($"{target} is missing: run scripts/fetch-models.sh.", target);
            }

            File.CreateSymbolicLink(Path.Combine(dir, file), Path.GetFullPath(target));
        }

        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(Indented));
    }

    /// <summary><c>bench-video@1</c>: the config of models/video/1, its frames through <c>bench-resnet18@1</c> and <c>bench-ppocr@4</c>.</summary>
    private static void AddVideo(string root, string source)
    {
        var config = ReadConfig(Path.Combine(source, "config.json"));
        var video = config["video"]!.AsObject();
        video["embedding_model"] = $"{ResNet}@1";
        video["ocr_model"] = OcrId;
        var dir = Path.Combine(root, Video, "1");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(Indented));
    }

    private static JsonObject ReadConfig(string path) =>
        JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions
        {
            CommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
        })!.AsObject();

    private static void AddResNet(string root, string name, JsonObject config, string weights)
    {
        var dir = Path.Combine(root, name, "1");
        Directory.CreateDirectory(dir);
        File.CreateSymbolicLink(Path.Combine(dir, "model.onnx"), Path.GetFullPath(weights));
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(Indented));
    }
}
