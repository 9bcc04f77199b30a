namespace Async.Serving.Contracts;

/// <summary>
/// Command sent by the API to the queue of one model: run this job. The input itself is not in the
/// message; it waits in Redis under <see cref="InputKey"/> (claim check), or in the blob store when
/// it is large (docs/blobs.md): the worker gets either from the job store's start script.
/// </summary>
public sealed record RunInference
{
    public required string JobId { get; init; }
    public required string TenantId { get; init; }
    public required string Pipeline { get; init; }
    public required string Model { get; init; }
    public required string ModelVersion { get; init; }
    public required string InputKey { get; init; }
    public string? ContentType { get; init; }
    /// <summary>Pipeline parameters as a JSON object, passed through untouched.</summary>
    public string? ParamsJson { get; init; }
    public required DateTimeOffset SubmittedAt { get; init; }
    /// <summary>A job still queued after this instant is expired and never run.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }
    public int TimeoutSeconds { get; init; }
    /// <summary>
    /// <see cref="JobPriorities"/>: the lane the job was sent to. A message of a build before
    /// priorities has none and reads as normal.
    /// </summary>
    public string Priority { get; init; } = JobPriorities.Normal;

    /// <summary>
    /// The W3C <c>traceparent</c> of the job's submit: in a <see cref="RunInferenceBatch"/>, whose
    /// message carries one trace for all its jobs, the worker runs each job in its own trace from it.
    /// </summary>
    public string? TraceParent { get; init; }
}
