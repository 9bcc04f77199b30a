using System.Text.Json.Serialization;

namespace Async.Serving.Models;

/// <summary>
/// <c>models/&lt;name&gt;/&lt;version&gt;/config.json</c>: what a model does and how it is served.
/// </summary>
public sealed class ModelConfig
{
    /// <summary>The pipeline kind this model serves, for example <c>image.embed</c>.</summary>
    public string Pipeline { get; set; } = string.Empty;

    public TensorConfig Input { get; set; } = new();

    public TensorConfig Output { get; set; } = new();

    public PreprocessingConfig Preprocessing { get; set; } = new();

    /// <summary>Scale each output vector to unit length.</summary>
    public bool L2Normalize { get; set; }

    public int MaxBatchSize { get; set; } = 8;

    public int MaxQueueDelayMs { get; set; } = 5;

    /// <summary>How many batch loops a worker runs for this model over its one (thread-safe) ONNX Runtime session.</summary>
    public int Instances { get; set; } = 1;

    /// <summary><c>cuda</c> (falls back to CPU when CUDA cannot load) or <c>cpu</c>.</summary>
    public string ExecutionProvider { get; set; } = "cuda";
}

public sealed class TensorConfig
{
    public string Name { get; set; } = string.Empty;

    /// <summary>Shape of one item, without the batch dimension.</summary>
    public int[] Shape { get; set; } = [];
}

public sealed class PreprocessingConfig
{
    public int Width { get; set; } = 224;

    public int Height { get; set; } = 224;

    /// <summary><c>center_crop</c> (shorter side to size, then the centre) or <c>stretch</c>.</summary>
    public string Resize { get; set; } = "center_crop";

    /// <summary>Order of the three planes in the input tensor: <c>rgb</c> or <c>bgr</c>.</summary>
    public string ChannelOrder { get; set; } = "rgb";

    /// <summary>Pixel values are multiplied by this first (1 keeps 0–255, 1/255 gives 0–1).</summary>
    public float Scale { get; set; } = 1f;

    public float[] Mean { get; set; } = [0f, 0f, 0f];

    public float[] Std { get; set; } = [1f, 1f, 1f];
}

/// <summary>A model version found in the repository.</summary>
public sealed record ModelEntry(string Name, string Version, string Directory, ModelConfig Config)
{
    public string Id => $"{Name}@{Version}";

    public string ModelPath => Path.Combine(Directory, "model.onnx");

    /// <summary>The RabbitMQ queue that carries this model's jobs, kebab-case.</summary>
    public string QueueName => $"infer-{Name}-{Version}".ToLowerInvariant();
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(ModelConfig))]
internal sealed partial class ModelConfigJsonContext : JsonSerializerContext;
