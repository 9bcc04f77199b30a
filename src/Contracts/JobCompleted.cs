namespace Async.Serving.Contracts;

/// <summary>Published by a worker after the output of a job has been written to the job store.</summary>
public sealed record JobCompleted
{
    public required string JobId { get; init; }
    public required string TenantId { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public required DateTimeOffset CompletedAt { get; init; }
    public int Attempt { get; init; }
    public required long QueueMs { get; init; }
    public required long ExecutionMs { get; init; }
}
