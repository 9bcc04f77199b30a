using System.Text.Json;
using System.Text.RegularExpressions;

namespace Async.Serving.Models;

/// <summary>
/// The model repository on disk, Triton style: one folder per model and version, each with
/// <c>model.onnx</c> and <c>config.json</c>. Adding a model is adding a folder.
/// </summary>
public sealed partial class ModelRepository
{
    private static readonly string[] Pipelines = ["image.embed", "image.ocr", "video.analyze"];
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

        return new ModelRepository(models);
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

        if (string.IsNullOrWhiteSpace(c.Input.Name))
        {
            Fail("input.name", "is required.");
        }

        if (c.Input.Shape.Length != 3 || c.Input.Shape.Any(d => d <= 0))
        {
            Fail("input.shape", "must be three positive numbers [channels, height, width] (no batch dimension).");
        }

        if (string.IsNullOrWhiteSpace(c.Output.Name))
        {
            Fail("output.name", "is required.");
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

        var p = c.Preprocessing;
        if (!ResizeModes.Contains(p.Resize))
        {
            Fail("preprocessing.resize", $"is '{p.Resize}'; expected center_crop or stretch.");
        }

        if (!ChannelOrders.Contains(p.ChannelOrder))
        {
            Fail("preprocessing.channel_order", $"is '{p.ChannelOrder}'; expected rgb or bgr.");
        }

        if (p.Mean.Length != 3 || p.Std.Length != 3 || p.Std.Any(s => s == 0))
        {
            Fail("preprocessing.mean/std", "need three values each, std non-zero.");
        }

        if (c.Input.Shape.Length == 3 && (c.Input.Shape[0] != 3 || c.Input.Shape[1] != p.Height || c.Input.Shape[2] != p.Width))
        {
            Fail("input.shape", $"[{string.Join(", ", c.Input.Shape)}] does not match preprocessing [3, {p.Height}, {p.Width}].");
        }

        if (requireWeights && !File.Exists(entry.ModelPath))
        {
            Fail("(model.onnx)", $"the file {entry.ModelPath} is missing. Run scripts/fetch-models.sh.");
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
