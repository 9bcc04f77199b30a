namespace Async.Serving.Contracts;

/// <summary>Published by a worker when a job waited in the queue past its TTL and was never run.</summary>
public sealed record JobExpired
{
    public required string JobId { get; init; }
    public required string TenantId { get; init; }
    public required DateTimeOffset ExpiredAt { get; init; }
}
