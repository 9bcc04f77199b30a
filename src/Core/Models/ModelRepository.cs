using System.Text.Json;
using System.Text.RegularExpressions;
using Async.Serving.Contracts.Outputs;

namespace Async.Serving.Models;

/// <summary>
/// The model repository on disk, Triton style: one folder per model and version, each with
/// <c>model.onnx</c> and <c>config.json</c>. Adding a model is adding a folder.
/// </summary>
public sealed partial class ModelRepository
{
    private static IReadOnlyList<string> Pipelines => PipelineNames.All;
    private static readonly string[] ExecutionProviders = ["cuda", "cpu"];
    private static readonly string[] ResizeModes = ["center_crop", "stretch"];
    private static readonly string[] ChannelOrders = ["rgb", "bgr"];

    private readonly Dictionary<string, SortedList<string, ModelEntry>> _models;

    private ModelRepository(Dictionary<string, SortedList<string, ModelEntry>> models) => _models = models;

    public IEnumerable<ModelEntry> All => _models.Values.SelectMany(v => v.Values);

    /// <summary>Reads every <c>config.json</c> under <paramref name="root"/>; an invalid one throws naming the file and field.</summary>
    public static ModelRepository Load(string root, bool requireWeights)
    {
        if (!Directory.Exists(root))
        {
            throw new ModelConfigException($"Model repository '{Path.GetFullPath(root)}' does not exist. Run scripts/fetch-models.sh.");
        }

        var models = new Dictionary<string, SortedList<string, ModelEntry>>(StringComparer.OrdinalIgnoreCase);
        foreach (var modelDir in Directory.EnumerateDirectories(root))
        {
            var name = Path.GetFileName(modelDir);
            foreach (var versionDir in Directory.EnumerateDirectories(modelDir))
            {
                var configPath = Path.Combine(versionDir, "config.json");
                if (!File.Exists(configPath))
                {
                    continue;
                }

                var version = Path.GetFileName(versionDir);
                var entry = new ModelEntry(name, version, versionDir, ReadConfig(configPath));
                Validate(entry, configPath, requireWeights);
                if (!models.TryGetValue(name, out var versions))
                {
                    versions = new SortedList<string, ModelEntry>(VersionComparer.Instance);
                    models[name] = versions;
                }

                versions[version] = entry;
            }
        }

        var repository = new ModelRepository(models);
        foreach (var entry in repository.All.Where(e => e.Config.Video is not null))
        {
            repository.CheckReference(entry, "video.embedding_model", entry.Config.Video!.EmbeddingModel, PipelineNames.ImageEmbed);
            if (entry.Config.Video.OcrModel.Length > 0)
            {
                repository.CheckReference(entry, "video.ocr_model", entry.Config.Video.OcrModel, PipelineNames.ImageOcr);
            }
        }

        return repository;
    }

    /// <summary>The image models a model needs loaded beside it (a video model's embedding and OCR models).</summary>
    public IReadOnlyList<ModelEntry> Dependencies(ModelEntry entry) =>
        entry.Config.Video is { } v
            ? [.. new[] { v.EmbeddingModel, v.OcrModel }.Where(r => r.Length > 0).Select(r => Resolve(r)!)]
            : [];

    private void CheckReference(ModelEntry entry, string field, string reference, string pipeline)
    {
        if (Resolve(reference) is not { } target || target.Config.Pipeline != pipeline)
        {
            throw new ModelConfigException(
                $"{Path.Combine(entry.Directory, "config.json")}: field '{field}' names '{reference}', which is not an {pipeline} model in the repository.");
        }
    }

    /// <summary>Resolves <c>name</c> (newest version) or <c>name@version</c>.</summary>
    public ModelEntry? Resolve(string reference)
    {
        var at = reference.IndexOf('@', StringComparison.Ordinal);
        var name = at < 0 ? reference : reference[..at];
        if (!_models.TryGetValue(name, out var versions) || versions.Count == 0)
        {
            return null;
        }

        if (at < 0)
        {
            return versions.Values[^1];
        }

        return versions.TryGetValue(reference[(at + 1)..], out var entry) ? entry : null;
    }

    private static ModelConfig ReadConfig(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return JsonSerializer.Deserialize(stream, ModelConfigJsonContext.Default.ModelConfig)
                ?? throw new ModelConfigException($"{path}: the file is empty.");
        }
        catch (JsonException ex)
        {
            throw new ModelConfigException($"{path}: {(ex.Path is { } p ? $"field '{p}': " : string.Empty)}{ex.Message}", ex);
        }
    }

    private static void Validate(ModelEntry entry, string path, bool requireWeights)
    {
        var c = entry.Config;
        void Fail(string field, string problem) => throw new ModelConfigException($"{path}: field '{field}' {problem}");

        if (!NamePattern().IsMatch(entry.Name))
        {
            Fail("(folder name)", $"'{entry.Name}' must be lower-case letters, digits, '-' or '_'.");
        }

        if (!NamePattern().IsMatch(entry.Version))
        {
            Fail("(version folder)", $"'{entry.Version}' must be lower-case letters, digits, '-' or '_'.");
        }

        if (!Pipelines.Contains(c.Pipeline))
        {
            Fail("pipeline", $"is '{c.Pipeline}'; expected one of {string.Join(", ", Pipelines)}.");
        }

        if (c.MaxBatchSize is < 1 or > 1024)
        {
            Fail("max_batch_size", "must be between 1 and 1024.");
        }

        if (c.MaxQueueDelayMs is < 0 or > 10_000)
        {
            Fail("max_queue_delay_ms", "must be between 0 and 10000.");
        }

        if (c.Instances is < 1 or > 16)
        {
            Fail("instances", "must be between 1 and 16.");
        }

        if (!ExecutionProviders.Contains(c.ExecutionProvider))
        {
            Fail("execution_provider", $"is '{c.ExecutionProvider}'; expected cuda or cpu.");
        }

        switch (c.Pipeline)
        {
            case PipelineNames.ImageEmbed:
                ValidateEmbedding(entry, Fail, requireWeights);
                break;
            case PipelineNames.ImageOcr:
                ValidateOcr(entry, Fail, requireWeights);
                break;
            default:
                ValidateVideo(entry, Fail);
                break;
        }
    }

    private static void ValidateEmbedding(ModelEntry entry, Action<string, string> fail, bool requireWeights)
    {
        var c = entry.Config;
        if (string.IsNullOrWhiteSpace(c.Input.Name))
        {
            fail("input.name", "is required.");
        }

        if (c.Input.Shape.Length != 3 || c.Input.Shape.Any(d => d <= 0))
        {
            fail("input.shape", "must be three positive numbers [channels, height, width] (no batch dimension).");
        }

        if (string.IsNullOrWhiteSpace(c.Output.Name))
        {
            fail("output.name", "is required.");
        }

        var p = c.Preprocessing;
        if (!ResizeModes.Contains(p.Resize))
        {
            fail("preprocessing.resize", $"is '{p.Resize}'; expected center_crop or stretch.");
        }

        if (!ChannelOrders.Contains(p.ChannelOrder))
        {
            fail("preprocessing.channel_order", $"is '{p.ChannelOrder}'; expected rgb or bgr.");
        }

        if (p.Mean.Length != 3 || p.Std.Length != 3 || p.Std.Any(s => s == 0))
        {
            fail("preprocessing.mean/std", "need three values each, std non-zero.");
        }

        if (c.Input.Shape.Length == 3 && (c.Input.Shape[0] != 3 || c.Input.Shape[1] != p.Height || c.Input.Shape[2] != p.Width))
        {
            fail("input.shape", $"[{string.Join(", ", c.Input.Shape)}] does not match preprocessing [3, {p.Height}, {p.Width}].");
        }

        if (requireWeights && !File.Exists(entry.ModelPath))
        {
            fail("(model.onnx)", $"the file {entry.ModelPath} is missing. Run scripts/fetch-models.sh.");
        }
    }

    private static void ValidateOcr(ModelEntry entry, Action<string, string> fail, bool requireWeights)
    {
        if (entry.Config.Ocr is not { } o)
        {
            fail("ocr", "is required for pipeline image.ocr.");
            return;
        }

        foreach (var (field, file, required) in new[] { ("ocr.detection", o.Detection, true), ("ocr.recognition", o.Recognition, true), ("ocr.classifier", o.Classifier, false), ("ocr.dictionary", o.Dictionary, true) })
        {
            if (string.IsNullOrWhiteSpace(file))
            {
                if (required)
                {
                    fail(field, "is required.");
                }

                continue;
            }

            if (Path.IsPathRooted(file) || file.Contains("..", StringComparison.Ordinal))
            {
                fail(field, "must be a file name inside the model's folder.");
            }

            if (requireWeights && !File.Exists(Path.Combine(entry.Directory, file)))
            {
                fail(field, $"names {Path.Combine(entry.Directory, file)}, which is missing. Run scripts/fetch-models.sh.");
            }
        }

        if (o.DetMaxSide is < 32 or > 8192)
        {
            fail("ocr.det_max_side", "must be between 32 and 8192.");
        }

        if (o.MaxImageSide is < 256 or > 32_768)
        {
            fail("ocr.max_image_side", "must be between 256 and 32768.");
        }

        if (o.DetMaxSideRefined < o.DetMaxSide || o.DetMaxSideRefined > 8192)
        {
            fail("ocr.det_max_side_refined", "must be at least det_max_side and at most 8192.");
        }

        if (o.DetRefineBelow is < 0 or > 500 || float.IsNaN(o.DetRefineBelow))
        {
            fail("ocr.det_refine_below", "must be between 0 and 500.");
        }

        foreach (var (field, value) in new[] { ("ocr.det_threshold", o.DetThreshold), ("ocr.box_threshold", o.BoxThreshold), ("ocr.min_confidence", o.MinConfidence), ("ocr.classifier_threshold", o.ClassifierThreshold) })
        {
            if (value is < 0f or > 1f || float.IsNaN(value))
            {
                fail(field, "must be between 0 and 1.");
            }
        }

        if (o.UnclipRatio is < 0f or > 10f)
        {
            fail("ocr.unclip_ratio", "must be between 0 and 10.");
        }

        if (o.ConcurrentJobs is < 1 or > 256)
        {
            fail("ocr.concurrent_jobs", "must be between 1 and 256.");
        }

        if (o.MinBoxSide is < 1 or > 1000)
        {
            fail("ocr.min_box_side", "must be between 1 and 1000.");
        }

        if (o.RecWidthBuckets.Length == 0 || o.RecWidthBuckets.Any(w => w is < 8 or > 8192 || w % 8 != 0)
            || !o.RecWidthBuckets.SequenceEqual(o.RecWidthBuckets.Order().Distinct()))
        {
            fail("ocr.rec_width_buckets", "must be increasing multiples of 8 between 8 and 8192.");
        }
    }

    private static void ValidateVideo(ModelEntry entry, Action<string, string> fail)
    {
        if (entry.Config.Video is not { } v)
        {
            fail("video", "is required for pipeline video.analyze.");
            return;
        }

        if (string.IsNullOrWhiteSpace(v.EmbeddingModel))
        {
            fail("video.embedding_model", "is required (name@version of an image.embed model).");
        }

        if (v.MaxSampleFps is <= 0 or > 120 || v.DefaultSampleFps <= 0 || v.DefaultSampleFps > v.MaxSampleFps)
        {
            fail("video.default_sample_fps/max_sample_fps", "need 0 < default_sample_fps <= max_sample_fps <= 120.");
        }

        if (v.ShotThreshold is <= 0 or >= 2)
        {
            fail("video.shot_threshold", "must be above 0 and below 2 (a cosine distance).");
        }

        if (v.FrameMaxSide is < 64 or > 8192)
        {
            fail("video.frame_max_side", "must be between 64 and 8192.");
        }

        if (v.MaxDurationSeconds is <= 0 or > 86_400)
        {
            fail("video.max_duration_seconds", "must be above 0 and at most 86400.");
        }

        if (v.ConcurrentJobs is < 1 or > 64)
        {
            fail("video.concurrent_jobs", "must be between 1 and 64.");
        }
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,63}$")]
    private static partial Regex NamePattern();

    /// <summary>Numeric versions compare as numbers ("10" after "9"), others as text.</summary>
    private sealed class VersionComparer : IComparer<string>
    {
        public static readonly VersionComparer Instance = new();

        public int Compare(string? x, string? y) =>
            long.TryParse(x, out var a) && long.TryParse(y, out var b)
                ? a.CompareTo(b)
                : string.CompareOrdinal(x, y);
    }
}

public sealed class ModelConfigException : Exception
{
    public ModelConfigException(string message) : base(message)
    {
    }

    public ModelConfigException(string message, Exception inner) : base(message, inner)
    {
    }
}
