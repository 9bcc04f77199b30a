namespace Async.Serving.Cli.Submit;

/// <summary>What became of one file. <see cref="Status"/> is the job's terminal status, or <c>skipped</c> (its result was there), <c>refused</c> (the API answered with a problem) or <c>interrupted</c>.</summary>
public sealed record FileOutcome
{
    public required string File { get; init; }
    public required string Pipeline { get; init; }
    public required string Status { get; init; }
    public string? Model { get; init; }
    public string? JobId { get; init; }
    public string? Result { get; init; }
    public string? ErrorCode { get; init; }
    public string? ErrorMessage { get; init; }
    public long? ExecutionMs { get; init; }

    public bool IsFailure => Status is not (OutcomeStatus.Succeeded or OutcomeStatus.Skipped or OutcomeStatus.Interrupted);
}

public static class OutcomeStatus
{
    public const string Succeeded = "succeeded";
    public const string Skipped = "skipped";
    public const string Refused = "refused";
    public const string Interrupted = "interrupted";
}

/// <summary>The result of a run, as <c>--json</c> writes it and the summary table shows it.</summary>
public sealed record SubmitSummary(IReadOnlyList<FileOutcome> Files, bool Interrupted)
{
    public int Total => Files.Count;
    public int Succeeded => Files.Count(f => f.Status == OutcomeStatus.Succeeded);
    public int Skipped => Files.Count(f => f.Status == OutcomeStatus.Skipped);
    public int Failed => Files.Count(f => f.IsFailure);
    public int Unfinished => Files.Count(f => f.Status == OutcomeStatus.Interrupted);

    public int ExitCode => Interrupted ? ExitCodes.Interrupted : Failed > 0 ? ExitCodes.JobFailed : ExitCodes.Ok;
}
