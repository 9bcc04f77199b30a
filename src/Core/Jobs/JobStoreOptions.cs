using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Jobs;

/// <summary>How long the job store keeps things (section <c>Serving:Results</c>).</summary>
public sealed class JobStoreOptions
{
    public const string Section = "Serving:Results";

    /// <summary>How long an output is kept after the job finished.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00")]
    public TimeSpan Retention { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How long the job's status (without output) is kept after it finished.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "365.00:00:00")]
    public TimeSpan StatusRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>How long an input waits in Redis for a worker (claim check); longer than Serving:Limits:MaxTtlSeconds (7 days).</summary>
    [Range(typeof(TimeSpan), "00:01:00", "30.00:00:00")]
    public TimeSpan InputRetention { get; set; } = TimeSpan.FromDays(8);
}
