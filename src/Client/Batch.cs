using System.Text.Json;
using System.Text.Json.Serialization;
using Async.Serving.Contracts.Outputs;

namespace Async.Serving.Client;

/// <summary>A batch as <c>GET /v1/batches/{id}</c> answers it. Times are UTC.</summary>
public sealed record Batch
{
    public required string Id { get; init; }

    /// <summary><c>validating</c>, <c>in_progress</c>, <c>completed</c>, <c>cancelling</c> or <c>cancelled</c>.</summary>
    public required string Status { get; init; }

    /// <summary>Lines in the file: one job, or one error, each.</summary>
    public int Total { get; init; }

    public required BatchCounts Counts { get; init; }

    /// <summary>Share of the lines that have ended, 0 to 1.</summary>
    public double Progress { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? StartedAt { get; init; }

    public DateTimeOffset? CompletedAt { get; init; }

    public DateTimeOffset? CancelledAt { get; init; }

    public JsonElement? Metadata { get; init; }

    /// <summary>True once every line has ended: <c>completed</c> or <c>cancelled</c>.</summary>
    [JsonIgnore]
    public bool IsEnded => Status is "completed" or "cancelled";
}

/// <summary>A batch's lines by status; they add up to <see cref="Batch.Total"/>. <see cref="Errored"/>: lines that never became a job.</summary>
public sealed record BatchCounts(int Pending, int Queued, int Running, int Succeeded, int Failed, int Cancelled, int Expired, int Errored);

public sealed record BatchPage(IReadOnlyList<Batch> Data, string? NextCursor);

/// <summary>One line of a batch's results, in input order: its job's status, and the output or the error.</summary>
public sealed record BatchResult
{
    public required string CustomId { get; init; }

    /// <summary>The line's number in the file that was sent (1-based).</summary>
    public int Line { get; init; }

    /// <summary>Null for a line that never became a job (<c>errored</c>, or cancelled before).</summary>
    public string? JobId { get; init; }

    /// <summary>pending, one of <see cref="JobStatuses"/>, or errored.</summary>
    public required string Status { get; init; }

    [JsonConverter(typeof(LenientJobOutputConverter))]
    public JobOutput? Output { get; init; }

    public JobError? Error { get; init; }
}

/// <summary>One line of a batch: a job as <see cref="SubmitRequest"/> has it, with the caller's <see cref="CustomId"/>.</summary>
public sealed record BatchItem
{
    /// <summary>Unique within the batch, at most 128 characters; the results name each line by it.</summary>
    public required string CustomId { get; init; }

    public required string Pipeline { get; init; }

    public string? Model { get; init; }

    /// <summary>A file or bytes (sent as base64 in the line) or a URL the API fetches.</summary>
    public required JobInput Input { get; init; }

    public JsonElement? Params { get; init; }

    public JsonElement? Metadata { get; init; }

    public int? TtlSeconds { get; init; }

    public int? TimeoutSeconds { get; init; }

    /// <summary><c>low</c>, <c>normal</c> or <c>high</c> (<see cref="JobPriorities"/>); null for the tenant's default.</summary>
    public string? Priority { get; init; }
}

/// <summary>The batch-level fields of a submit.</summary>
public sealed record BatchSubmitOptions
{
    /// <summary>Where <c>batch.completed</c> is delivered once every line has ended (signed like job webhooks).</summary>
    public Uri? WebhookUrl { get; init; }

    /// <summary>A JSON object echoed back on the batch.</summary>
    public JsonElement? Metadata { get; init; }

    /// <summary>
    /// Sent as <c>Idempotency-Key</c>: the same key and the same batch (file, webhook, metadata) give
    /// the first batch back, not a second one. When null the client makes one per call, so that its
    /// own retries never submit twice.
    /// </summary>
    public string? IdempotencyKey { get; init; }
}

/// <summary>The JSON of one batch line as sent.</summary>
internal sealed record BatchLineBody
{
    public required string CustomId { get; init; }
    public required string Pipeline { get; init; }
    public string? Model { get; init; }
    public required BatchInputBody Input { get; init; }
    public JsonElement? Params { get; init; }
    public JsonElement? Metadata { get; init; }
    public int? TtlSeconds { get; init; }
    public int? TimeoutSeconds { get; init; }
    public string? Priority { get; init; }
}

internal sealed record BatchInputBody(string? Url, string? Base64);

/// <summary>The <c>request</c> part of a multipart batch submit.</summary>
internal sealed record BatchRequestBody(UrlBody? Webhook, JsonElement? Metadata);
