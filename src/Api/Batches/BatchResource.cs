using System.Text.Json;
using System.Text.Json.Serialization;
using Async.Serving.Api.Jobs;
using Async.Serving.Contracts.Outputs;
using Async.Serving.Jobs;

namespace Async.Serving.Api.Batches;

/// <summary>The Batch resource: where a batch stands, its lines counted by status. Times are UTC ("…Z").</summary>
public sealed record BatchResource
{
    public required string Id { get; init; }

    /// <summary>validating, in_progress, completed, cancelling or cancelled.</summary>
    public required string Status { get; init; }

    /// <summary>Lines in the file (blank lines aside): one job each, or one error.</summary>
    public required int Total { get; init; }

    public required BatchCounts Counts { get; init; }

    /// <summary>Share of the lines that have ended (a job terminal, or an error), 0 to 1.</summary>
    public required double Progress { get; init; }

    public required DateTime CreatedAt { get; init; }

    /// <summary>When its lines started becoming jobs.</summary>
    public DateTime? StartedAt { get; init; }

    /// <summary>When its last line ended (completed or cancelled).</summary>
    public DateTime? CompletedAt { get; init; }

    public DateTime? CancelledAt { get; init; }

    public JsonElement? Metadata { get; init; }

    public BatchWebhook? Webhook { get; init; }

    public required BatchLinks Links { get; init; }

    public static BatchResource From(BatchRecord batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int Count(string status) => batch.Counts.TryGetValue(status, out var n) ? n : 0;
        var counts = new BatchCounts(
            Count(BatchLineStatuses.Pending), Count(JobStatuses.Queued), Count(JobStatuses.Running), Count(JobStatuses.Succeeded),
            Count(JobStatuses.Failed), Count(JobStatuses.Cancelled), Count(JobStatuses.Expired), Count(BatchLineStatuses.Errored));
        var live = counts.Pending + counts.Queued + counts.Running;
        return new BatchResource
        {
            Id = batch.Id,
            Status = batch.Status,
            Total = batch.Total,
            Counts = counts,
            Progress = batch.Total == 0 ? 1 : Math.Round((double)(batch.Total - live) / batch.Total, 4),
            CreatedAt = batch.CreatedAt.UtcDateTime,
            StartedAt = batch.StartedAt?.UtcDateTime,
            CompletedAt = batch.CompletedAt?.UtcDateTime,
            CancelledAt = batch.CancelledAt?.UtcDateTime,
            Metadata = batch.MetadataJson is { } m ? JsonDocument.Parse(m).RootElement.Clone() : null,
            Webhook = batch.WebhookUrl is { } url ? new BatchWebhook { Url = url } : null,
            Links = new BatchLinks($"/v1/batches/{batch.Id}", $"/v1/batches/{batch.Id}/results", $"/v1/batches/{batch.Id}/cancel"),
        };
    }
}

/// <summary>
/// The lines by status: <c>pending</c> (not yet a job), the job statuses, and <c>errored</c> (the line
/// never became a job: see its error in the results). A line still pending when the batch was
/// cancelled counts as <c>cancelled</c>. They add up to <c>total</c>.
/// </summary>
public sealed record BatchCounts(int Pending, int Queued, int Running, int Succeeded, int Failed, int Cancelled, int Expired, int Errored);

public sealed record BatchLinks(string Self, string Results, string Cancel);

public sealed record BatchList(IReadOnlyList<BatchResource> Data, string? NextCursor);

/// <summary>
/// One line of <c>GET /v1/batches/{id}/results</c>, in input order: the line's <c>custom_id</c> and
/// number, its job and the job's status, and the output of a succeeded job or the error of a failed
/// job or of a line that never became one.
/// </summary>
public sealed record BatchResultLine
{
    public required string CustomId { get; init; }

    /// <summary>The line's number in the uploaded file (1-based, blank lines counted).</summary>
    public required int Line { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? JobId { get; init; }

    /// <summary>pending, queued, running, succeeded, failed, cancelled, expired or errored.</summary>
    public required string Status { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JobOutput? Output { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JobError? Error { get; init; }

    /// <summary>The line as its job (or its line status) has it now.</summary>
    public static BatchResultLine From(BatchLine line, JobRecord? job)
    {
        ArgumentNullException.ThrowIfNull(line);
        if (job is null)
        {
            var error = line.ErrorCode is { } code ? new JobError(code, line.ErrorMessage ?? string.Empty)
                : line.JobId is not null && line.Status == JobStatuses.Succeeded ? new JobError("result_expired", "The job's result is no longer retained.")
                : null;
            return new BatchResultLine { CustomId = line.CustomId, Line = line.Line, JobId = line.JobId, Status = line.Status, Error = error };
        }

        var resource = JobResource.From(job);
        return new BatchResultLine
        {
            CustomId = line.CustomId,
            Line = line.Line,
            JobId = job.Id,
            Status = job.Status,
            Output = resource.Output,
            Error = resource.Error ?? (job.Status == JobStatuses.Succeeded && resource.Output is null
                ? new JobError("result_expired", "The job's result is no longer retained.")
                : null),
        };
    }
}
