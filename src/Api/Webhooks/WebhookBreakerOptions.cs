using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.Webhooks;

/// <summary>Section <c>Serving:Webhooks:Breaker</c>: the circuit breaker per receiving host (see <see cref="WebhookBreakers"/>).</summary>
public sealed class WebhookBreakerOptions
{
    public const string Section = "Serving:Webhooks:Breaker";

    /// <summary>Off: every delivery is sent, whatever the host did before (retries and backoff only).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Consecutive failed attempts to a host (5xx, no answer in time, connection or TLS failure) that open its breaker.</summary>
    [Range(1, 1000)]
    public int FailureThreshold { get; set; } = 5;

    /// <summary>The failures count only while the first of them is no older than this; an older run starts again from one.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan FailureWindow { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How long an open breaker sends nothing to its host; then one probe delivery goes (half-open).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan CoolDown { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A delivery held longer than this in all (its host's breaker never closed) fails for good.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "30.00:00:00")]
    public TimeSpan MaxHold { get; set; } = TimeSpan.FromHours(24);
}
