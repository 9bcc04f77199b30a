namespace Async.Serving.Contracts;

/// <summary>Published by a worker when it starts executing a job.</summary>
public sealed record JobStarted
{
    public required string JobId { get; init; }
    public required string TenantId { get; init; }
    public required DateTimeOffset StartedAt { get; init; }
    public required int Attempt { get; init; }
}
