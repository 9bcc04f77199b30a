using Async.Serving.Models;

namespace Async.Serving.UnitTests;

public sealed class ModelRepositoryTests : IDisposable
{
    private const string ValidConfig = """
        {
          "pipeline": "image.embed",
          "input": { "name": "image", "shape": [3, 224, 224] },
          "output": { "name": "features", "shape": [512] },
          "max_batch_size": 8,
          "max_queue_delay_ms": 5
        }
        """;

    private readonly string _root = Directory.CreateTempSubdirectory("models-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Write(string name, string version, string config)
    {
        var dir = Path.Combine(_root, name, version);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), config);
        return Path.Combine(dir, "config.json");
    }

    [Fact]
    public void A_bare_name_resolves_to_the_newest_version_numerically()
    {
        Write("resnet18", "2", ValidConfig);
        Write("resnet18", "10", ValidConfig);
        var repository = ModelRepository.Load(_root, requireWeights: false);

        Assert.Equal("resnet18@10", repository.Resolve("resnet18")!.Id);
        Assert.Equal("resnet18@2", repository.Resolve("resnet18@2")!.Id);
        Assert.Null(repository.Resolve("resnet18@3"));
        Assert.Null(repository.Resolve("nope"));
        Assert.Equal("infer-resnet18-10", repository.Resolve("resnet18")!.QueueName);
    }

    [Fact]
    public void An_invalid_field_fails_with_the_file_and_the_field_named()
    {
        var path = Write("bad", "1", ValidConfig.Replace("\"max_batch_size\": 8", "\"max_batch_size\": 0", StringComparison.Ordinal));
        var error = Assert.Throws<ModelConfigException>(() => ModelRepository.Load(_root, requireWeights: false));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("max_batch_size", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_field_is_refused_rather_than_ignored()
    {
        Write("typo", "1", ValidConfig.Replace("\"max_queue_delay_ms\"", "\"max_queue_delay\"", StringComparison.Ordinal));
        var error = Assert.Throws<ModelConfigException>(() => ModelRepository.Load(_root, requireWeights: false));
        Assert.Contains("max_queue_delay", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_weights_fail_when_a_worker_needs_them()
    {
        Write("resnet18", "1", ValidConfig);
        Assert.NotNull(ModelRepository.Load(_root, requireWeights: false).Resolve("resnet18"));
        var error = Assert.Throws<ModelConfigException>(() => ModelRepository.Load(_root, requireWeights: true));
        Assert.Contains("model.onnx", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_shipped_resnet18_config_is_valid()
    {
        var shipped = Path.Combine(RepoRoot(), "models");
        var entry = ModelRepository.Load(shipped, requireWeights: false).Resolve("resnet18");
        Assert.NotNull(entry);
        Assert.Equal("image.embed", entry.Config.Pipeline);
        Assert.True(entry.Config.L2Normalize);
    }

    [Fact]
    public void The_shipped_ocr_and_video_configs_are_valid_and_the_video_model_needs_the_image_models()
    {
        var repository = ModelRepository.Load(Path.Combine(RepoRoot(), "models"), requireWeights: false);
        var ocr = repository.Resolve("ppocr");
        Assert.Equal("image.ocr", ocr!.Config.Pipeline);
        Assert.Equal("ch_PP-OCRv4_rec_infer.onnx", ocr.Config.Ocr!.Recognition);
        var video = repository.Resolve("video");
        Assert.Equal("video.analyze", video!.Config.Pipeline);
        Assert.Equal(["resnet18@1", "ppocr@4"], repository.Dependencies(video).Select(e => e.Id));
        Assert.Empty(repository.Dependencies(ocr));
    }

    [Fact]
    public void A_video_model_naming_a_missing_or_wrong_kind_of_model_is_refused()
    {
        Write("resnet18", "1", ValidConfig);
        var path = Write("video", "1", """{ "pipeline": "video.analyze", "video": { "embedding_model": "resnet18@1", "ocr_model": "resnet18@1" } }""");
        var error = Assert.Throws<ModelConfigException>(() => ModelRepository.Load(_root, requireWeights: false));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("video.ocr_model", error.Message, StringComparison.Ordinal);

        Write("video", "1", """{ "pipeline": "video.analyze", "video": { "embedding_model": "resnet18@1", "shot_threshold": 3 } }""");
        error = Assert.Throws<ModelConfigException>(() => ModelRepository.Load(_root, requireWeights: false));
        Assert.Contains("video.shot_threshold", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_ocr_model_checks_its_files_and_buckets()
    {
        var path = Write("ocr", "1", """{ "pipeline": "image.ocr", "ocr": { "rec_width_buckets": [96, 80] } }""");
        var error = Assert.Throws<ModelConfigException>(() => ModelRepository.Load(_root, requireWeights: false));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("ocr.rec_width_buckets", error.Message, StringComparison.Ordinal);

        Write("ocr", "1", """{ "pipeline": "image.ocr", "ocr": { } }""");
        Assert.NotNull(ModelRepository.Load(_root, requireWeights: false).Resolve("ocr"));
        error = Assert.Throws<ModelConfigException>(() => ModelRepository.Load(_root, requireWeights: true));
        Assert.Contains("ocr.detection", error.Message, StringComparison.Ordinal);

        Write("ocr", "1", """{ "pipeline": "image.ocr" }""");
        error = Assert.Throws<ModelConfigException>(() => ModelRepository.Load(_root, requireWeights: false));
        Assert.Contains("'ocr' is required", error.Message, StringComparison.Ordinal);
    }

    internal static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Async.Serving.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Async.Serving.sln not found above the test binaries.");
    }
}
