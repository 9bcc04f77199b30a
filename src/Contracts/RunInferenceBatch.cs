namespace Async.Serving.Contracts;

/// <summary>
/// Several jobs for the same model queue in one message: what the API sends when submits arrive
/// while its previous send to that queue awaits the broker's confirm (docs/worker.md,
/// "Jobs per message"). Each job is handled as if it had come in a <see cref="RunInference"/> of
/// its own, and the message is acknowledged once every job in it is.
/// </summary>
public sealed record RunInferenceBatch
{
    public required IReadOnlyList<RunInference> Jobs { get; init; }
}
