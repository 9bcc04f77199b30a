namespace Async.Serving.Contracts;

/// <summary>
/// Published by a worker while a long job (a video) runs, at most once per progress interval, and
/// only when the job's webhook asked for <c>progress</c> (<see cref="RunInference.AnnounceProgress"/>).
/// </summary>
public sealed record JobProgress
{
    public required string JobId { get; init; }
    public required string TenantId { get; init; }

    /// <summary>0–1: the share of the job's work done.</summary>
    public required double Progress { get; init; }

    public required DateTimeOffset At { get; init; }
}
