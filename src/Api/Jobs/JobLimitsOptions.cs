using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.Jobs;

/// <summary>Section <c>Serving:Limits</c>: what one submit may carry. Defaults are in docs/api.md.</summary>
public sealed class JobLimitsOptions
{
    public const string Section = "Serving:Limits";

    /// <summary>Largest request body (JSON with base64, or multipart).</summary>
    [Range(1024, 2L * 1024 * 1024 * 1024)]
    public long MaxRequestBytes { get; set; } = 140 * 1024 * 1024;

    /// <summary>Largest encoded image (multipart file, decoded base64, or the body fetched from <c>input.url</c>).</summary>
    [Range(1024, 1024L * 1024 * 1024)]
    public long MaxImageBytes { get; set; } = 20 * 1024 * 1024;

    /// <summary>Largest video for <c>video.analyze</c> (multipart file, decoded base64, or <c>input.url</c>'s body).</summary>
    [Range(1024, 2L * 1024 * 1024 * 1024)]
    public long MaxVideoBytes { get; set; } = 100 * 1024 * 1024;

    /// <summary>
    /// Most pixels (width × height, from the image header) an image may declare; refused at submit,
    /// before it is stored. The worker has its own limit (<c>Serving:Worker:MaxImagePixels</c>).
    /// </summary>
    [Range(1, 1_000_000_000)]
    public long MaxImagePixels { get; set; } = 50_000_000;

    /// <summary>How long the API may take to download <c>input.url</c>: every redirect and the whole body.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:05:00")]
    public TimeSpan FetchTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest <c>metadata</c> object, serialised.</summary>
    [Range(0, 1024 * 1024)]
    public int MaxMetadataBytes { get; set; } = 8 * 1024;

    [Range(1, 7 * 24 * 3600)]
    public int DefaultTtlSeconds { get; set; } = 86_400;

    [Range(1, 7 * 24 * 3600)]
    public int MaxTtlSeconds { get; set; } = 7 * 86_400;

    [Range(1, 86_400)]
    public int DefaultTimeoutSeconds { get; set; } = 600;

    [Range(1, 86_400)]
    public int MaxTimeoutSeconds { get; set; } = 3600;

    /// <summary>How long the API waits for the broker to confirm a publish before it answers 503.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan PublishTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Most jobs one message to a job queue carries: submits to a queue that arrive while the API's
    /// previous send to it awaits the broker's confirm go together in the next message (no more than
    /// the model's <c>max_batch_size</c>; OCR and video jobs always go one per message). 1 sends one
    /// message per job. See docs/worker.md, "Jobs per message".
    /// </summary>
    [Range(1, 256)]
    public int MaxJobsPerMessage { get; set; } = 8;
}
