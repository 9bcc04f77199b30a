using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.Jobs;

/// <summary>Section <c>Serving:Limits</c>: what one submit may carry. Defaults are in docs/api.md.</summary>
public sealed class JobLimitsOptions
{
    public const string Section = "Serving:Limits";

    /// <summary>Largest request body (JSON with base64, or multipart).</summary>
    [Range(1024, 2L * 1024 * 1024 * 1024)]
    public long MaxRequestBytes { get; set; } = 32 * 1024 * 1024;

    /// <summary>Largest encoded image.</summary>
    [Range(1024, 1024L * 1024 * 1024)]
    public long MaxImageBytes { get; set; } = 20 * 1024 * 1024;

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
}
