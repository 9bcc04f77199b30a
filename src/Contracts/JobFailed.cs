namespace Async.Serving.Contracts;

/// <summary>Published by a worker when a job ends failed; the error is also in the job store.</summary>
public sealed record JobFailed
{
    public required string JobId { get; init; }
    public required string TenantId { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public required DateTimeOffset FailedAt { get; init; }
    public required string ErrorCode { get; init; }
    public required string ErrorMessage { get; init; }
}
