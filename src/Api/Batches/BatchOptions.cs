using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.Batches;

/// <summary>Section <c>Serving:Batches</c>: the limits of <c>POST /v1/batches</c> and how its lines become jobs.</summary>
public sealed class BatchOptions
{
    public const string Section = "Serving:Batches";

    /// <summary>The longest <c>custom_id</c>, in characters.</summary>
    public const int MaxCustomIdLength = 128;

    /// <summary>Lines (jobs) in one batch at most.</summary>
    [Range(1, 50_000)]
    public int MaxLines { get; set; } = 50_000;

    /// <summary>The largest batch body, in bytes (the JSONL file, or the whole multipart body).</summary>
    [Range(1024, 4L * 1024 * 1024 * 1024)]
    public long MaxBytes { get; set; } = 200L * 1024 * 1024;

    /// <summary>Lines per Hangfire chunk job: a retried chunk redoes at most this many lines' checks (never their jobs).</summary>
    [Range(1, 10_000)]
    public int ChunkSize { get; set; } = 500;

    /// <summary>How long a chunk refused with <c>queue_full</c> or <c>broker_unavailable</c> waits before it tries again (or the refusal's Retry-After, when longer).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often a chunk is tried again while the queue is full; then the line that was refused becomes an error and the chunk goes on.</summary>
    [Range(0, 1000)]
    public int MaxRetries { get; set; } = 30;
}
