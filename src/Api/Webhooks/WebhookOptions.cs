using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.Webhooks;

/// <summary>Section <c>Serving:Webhooks</c>: how deliveries are made and retried.</summary>
public sealed class WebhookOptions : IValidatableObject
{
    public const string Section = "Serving:Webhooks";

    /// <summary>The retry schedule when none is configured: about 18 hours in all, as Standard Webhooks senders commonly do.</summary>
    public static readonly TimeSpan[] DefaultRetryDelays =
    [
        TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(30),
        TimeSpan.FromHours(2), TimeSpan.FromHours(5), TimeSpan.FromHours(10),
    ];

    /// <summary>
    /// The Hangfire queue of deliveries (first attempts and retries). Hangfire servers that take it
    /// must know <see cref="WebhookDelivery"/>, so a separate name keeps deliveries away from servers of another build.
    /// </summary>
    [Required]
    [RegularExpression("^[a-z0-9_-]{1,64}$")]
    public string Queue { get; set; } = "webhooks";

    /// <summary>How long one attempt may take, connect to last byte of the answer.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:05:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// The wait before each retry (±10 % jitter); one retry per entry. Null: <see cref="DefaultRetryDelays"/>.
    /// An array, not a list with defaults, because the configuration binder appends to a list it finds filled.
    /// </summary>
    public TimeSpan[]? RetryDelays { get; set; }

    /// <summary>How long a rotated-out secret keeps signing next to the new one.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "30.00:00:00")]
    public TimeSpan RotationOverlap { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How much of a receiver's answer is kept for the record.</summary>
    [Range(0, 1024 * 1024)]
    public int MaxResponseBytes { get; set; } = 4096;

    /// <summary>Whether this process relays the outbox's events into deliveries (any number of API instances may; they share one consumer group).</summary>
    public bool RunRelay { get; set; } = true;

    /// <summary>Outbox entries the relay reads at once.</summary>
    [Range(1, 5000)]
    public int RelayBatchSize { get; set; } = 200;

    /// <summary>Wait between reads when the outbox has nothing new: the added latency of a webhook, at most.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan RelayPollInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest wait between retries while Redis or PostgreSQL fails; the wait doubles from <see cref="RelayPollInterval"/> up to this.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan RelayMaxBackoff { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Entries read but not relayed this long by another API instance (one that stopped) are taken over.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan RelayClaimIdle { get; set; } = TimeSpan.FromSeconds(30);

    public IReadOnlyList<TimeSpan> Delays => RetryDelays ?? DefaultRetryDelays;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Delays.Count > 30 || Delays.Any(d => d <= TimeSpan.Zero || d > TimeSpan.FromDays(7)))
        {
            yield return new ValidationResult(
                "Serving:Webhooks:RetryDelays takes at most 30 delays, each above zero and at most 7 days.", [nameof(RetryDelays)]);
        }
    }
}
