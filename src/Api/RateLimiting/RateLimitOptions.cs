using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.RateLimiting;

/// <summary>Section <c>Serving:RateLimits</c>: a token bucket per API key.</summary>
public sealed class RateLimitOptions
{
    public const string Section = "Serving:RateLimits";

    /// <summary>Sustained requests per second one key may make.</summary>
    [Range(1, 1_000_000)]
    public int PermitsPerSecond { get; set; } = 50;

    /// <summary>The bucket's size: requests one key may make at once after being idle.</summary>
    [Range(1, 1_000_000)]
    public int Burst { get; set; } = 100;
}
