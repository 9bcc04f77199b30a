namespace Async.Serving.Contracts;

/// <summary>Published when a job ends cancelled: by the API for a queued job, by the worker for a running one.</summary>
public sealed record JobCancelled
{
    public required string JobId { get; init; }
    public required string TenantId { get; init; }
    public required DateTimeOffset CancelledAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
}
