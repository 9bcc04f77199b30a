using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Breakers;

/// <summary>Section <c>Serving:ModelBreaker</c>: the circuit breaker per model version (see <see cref="ModelBreakers"/>); API and workers read the same.</summary>
public sealed class ModelBreakerOptions
{
    public const string Section = "Serving:ModelBreaker";

    /// <summary>Off: a failing model keeps taking jobs (each fails on its own), and submits are never refused for it.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Consecutive failed batches (the model threw for every item of the batch, each retried alone) that mark the version unavailable.</summary>
    [Range(1, 1000)]
    public int FailureThreshold { get; set; } = 3;

    /// <summary>The failures count only while the first of them is no older than this.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan FailureWindow { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long the version stays unavailable; then the next job is tried (half-open).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan CoolDown { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How long the half-open probe (one job) holds the version before another job may probe, should its worker die.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan ProbeLease { get; set; } = TimeSpan.FromMinutes(2);
}
