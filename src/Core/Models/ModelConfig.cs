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

    /// <summary>For <c>image.ocr</c>: the three PaddleOCR networks, the dictionary and the thresholds.</summary>
    public OcrConfig? Ocr { get; set; }

    /// <summary>For <c>video.analyze</c>: which image models the frames go through, and the defaults.</summary>
    public VideoConfig? Video { get; set; }
}

/// <summary>
/// An OCR model folder holds three networks and a dictionary. The batching settings of the
/// config (<c>max_batch_size</c>, <c>max_queue_delay_ms</c>, <c>instances</c>) apply to the
/// recogniser and the angle classifier, whose crops come from every OCR job; the delay and the
/// instances also to the text detector, whose batch limits are the worker's (<c>Serving:Worker:OcrDetection*</c>).
/// </summary>
public sealed class OcrConfig
{
    /// <summary>DB text detector (PP-OCRv4 det): input [N, 3, H, W], H and W multiples of 32.</summary>
    public string Detection { get; set; } = "det.onnx";

    /// <summary>CRNN/SVTR recogniser (PP-OCRv4 rec): input [N, 3, 48, W], output [N, W/8, classes] softmax.</summary>
    public string Recognition { get; set; } = "rec.onnx";

    /// <summary>Angle classifier (0° or 180°), input [N, 3, 48, 192]; empty turns it off.</summary>
    public string Classifier { get; set; } = "cls.onnx";

    /// <summary>One character per line; the recogniser's classes are blank, these characters, then space.</summary>
    public string Dictionary { get; set; } = "keys.txt";

    /// <summary>
    /// Larger images are read scaled down to this many pixels on their longer side (boxes are still
    /// reported in the original's pixels): a 48-megapixel photo costs no more than a 16-megapixel one.
    /// </summary>
    public int MaxImageSide { get; set; } = 4096;

    /// <summary>The image's longer side is scaled down to at most this many pixels for detection.</summary>
    public int DetMaxSide { get; set; } = 1280;

    /// <summary>
    /// When the detected lines of a downscaled image are on average shorter than this many
    /// detector pixels (small type on a big photo), detection runs again at a larger scale; 0 turns
    /// the second pass off.
    /// </summary>
    public float DetRefineBelow { get; set; } = 20f;

    /// <summary>The largest longer side the second detection pass may use.</summary>
    public int DetMaxSideRefined { get; set; } = 2560;

    /// <summary>Probability above which a pixel of the detector's map is text.</summary>
    public float DetThreshold { get; set; } = 0.3f;

    /// <summary>A region is kept when its mean probability is at least this.</summary>
    public float BoxThreshold { get; set; } = 0.6f;

    /// <summary>How far a region is grown back out (DB shrinks text regions when it is trained).</summary>
    public float UnclipRatio { get; set; } = 1.5f;

    /// <summary>Regions whose shorter side is below this many pixels (detector scale) are dropped.</summary>
    public int MinBoxSide { get; set; } = 3;

    /// <summary>Widths the recogniser's batches are padded to; a crop goes to the smallest that holds it.</summary>
    public int[] RecWidthBuckets { get; set; } = [96, 160, 256, 384, 512, 768, 1024];

    /// <summary>Lines read with a lower mean character confidence than this are left out.</summary>
    public float MinConfidence { get; set; } = 0.5f;

    /// <summary>A crop is turned 180° when the classifier says so with at least this confidence.</summary>
    public float ClassifierThreshold { get; set; } = 0.9f;

    /// <summary>OCR jobs one worker runs at once on this model's queue (their crops share the batches).</summary>
    public int ConcurrentJobs { get; set; } = 4;
}

/// <summary>
/// A video model composes image models: frames go through the embedding model's batcher (shared
/// with <c>image.embed</c> jobs) and, when a job asks for text, through the OCR model's.
/// </summary>
public sealed class VideoConfig
{
    /// <summary><c>name@version</c> of an <c>image.embed</c> model.</summary>
    public string EmbeddingModel { get; set; } = string.Empty;

    /// <summary><c>name@version</c> of an <c>image.ocr</c> model, used when a job sets <c>params.ocr</c>; empty means no OCR.</summary>
    public string OcrModel { get; set; } = string.Empty;

    public double DefaultSampleFps { get; set; } = 2;

    public double MaxSampleFps { get; set; } = 10;

    /// <summary>
    /// Least cosine distance between consecutive frame embeddings for a new shot to start (the
    /// distance must also stand out from its neighbours; see docs/pipelines.md).
    /// </summary>
    public double ShotThreshold { get; set; } = 0.12;

    /// <summary>Frames are decoded scaled down to fit this many pixels on their longer side.</summary>
    public int FrameMaxSide { get; set; } = 960;

    /// <summary>Longer videos fail with <c>input_too_large</c> before any frame is decoded.</summary>
    public double MaxDurationSeconds { get; set; } = 3600;

    /// <summary>Video jobs one worker runs at once on this model's queue.</summary>
    public int ConcurrentJobs { get; set; } = 2;
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

    /// <summary>The queue of one priority's lane: <see cref="QueueName"/> for normal (see <see cref="Messaging.JobQueues"/>).</summary>
    public string LaneQueue(string priority) => Messaging.JobQueues.Lane(QueueName, priority);

    /// <summary>Every lane's queue, highest priority first.</summary>
    public IReadOnlyList<string> LaneQueues => [.. Messaging.JobQueues.Lanes(QueueName).Select(l => l.Queue)];
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(ModelConfig))]
internal sealed partial class ModelConfigJsonContext : JsonSerializerContext;
