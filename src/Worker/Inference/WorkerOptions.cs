using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Worker.Inference;

/// <summary>Section <c>Serving:Worker</c>.</summary>
public sealed class WorkerOptions : IValidatableObject
{
    public const string Section = "Serving:Worker";

    /// <summary>Models this worker serves (<c>name</c> or <c>name@version</c>); empty means every model in the repository.</summary>
    public string[] Models { get; set; } = [];

    [Range(0, 64)]
    public int CudaDeviceId { get; set; }

    /// <summary>ONNX Runtime intra-op threads on CPU; 0 lets ONNX Runtime choose (one per physical core).</summary>
    [Range(0, 256)]
    public int IntraOpThreads { get; set; }

    /// <summary>
    /// Whether ONNX Runtime's CPU threads spin while waiting for work. Off by default: a spinning
    /// worker burns the cores that the API, the broker and Redis share with it on one host.
    /// </summary>
    public bool AllowSpinning { get; set; }

    /// <summary>Deliveries of one job before it is failed for good (a worker that dies mid-job counts as one).</summary>
    [Range(1, 20)]
    public int MaxAttempts { get; set; } = 3;

    /// <summary>Images whose header declares more pixels than this are refused before decoding.</summary>
    [Range(1, 1_000_000_000)]
    public long MaxImagePixels { get; set; } = 50_000_000;

    /// <summary>Upper bound of a job's execution when it names no <c>timeout_seconds</c>.</summary>
    [Range(1, 86_400)]
    public int DefaultTimeoutSeconds { get; set; } = 600;

    /// <summary>
    /// Most images in one run of an OCR model's text detector. Images of every OCR job (and video
    /// frame) that wait for the detector run together when their detection sizes share a bucket
    /// (<see cref="OcrDetectionBucketStep"/>); 1 runs detection one image at a time.
    /// </summary>
    [Range(1, 64)]
    public int OcrDetectionMaxBatch { get; set; } = 8;

    /// <summary>
    /// Detection sizes (multiples of 32) are rounded up to a multiple of this to form the buckets
    /// whose images share a detector run, each padded to the batch's largest. 32: only images of
    /// the same detection size share a run, unpadded, and read exactly as they read alone; more
    /// batches images of near sizes together, but padding changes PP-OCRv4's detection of the
    /// padded image (its squeeze-and-excitation blocks average over the whole map; see docs/pipelines.md).
    /// </summary>
    [Range(32, 1024)]
    public int OcrDetectionBucketStep { get; set; } = 32;

    /// <summary>
    /// Most pixels (padded width × height × images) in one detector run; an image larger than this
    /// alone still runs. It bounds the batch's tensors: the default is one 2560×2560 image, the
    /// largest input the refined detection pass makes, so a batch needs no more than one image did.
    /// </summary>
    [Range(typeof(long), "65536", "268435456")]
    public long OcrDetectionMaxBatchPixels { get; set; } = 2560 * 2560;

    /// <summary>Messages in flight per model queue = max_batch_size × instances × this factor (see docs/worker.md).</summary>
    [Range(1, 16)]
    public int PrefetchBatches { get; set; } = 2;

    /// <summary>On stop: how long in-flight jobs may take to finish before the process exits (unacked messages return to the queue).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Least time between two progress updates of one job (Redis, events, <c>job.progress</c> webhooks).</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan ProgressInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Port of the worker's Prometheus endpoint (<c>/metrics</c>); 0 turns it off.</summary>
    [Range(0, 65535)]
    public int MetricsPort { get; set; } = 9464;

    [Required]
    public string MetricsHost { get; set; } = "127.0.0.1";

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (OcrDetectionBucketStep % 32 != 0)
        {
            yield return new ValidationResult(
                $"OcrDetectionBucketStep must be a multiple of 32 (detection sizes are), not {OcrDetectionBucketStep}.", [nameof(OcrDetectionBucketStep)]);
        }
    }
}
