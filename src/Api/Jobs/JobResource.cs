using System.Text.Json;
using System.Text.Json.Nodes;
using Async.Serving.Contracts.Outputs;
using Async.Serving.Jobs;

namespace Async.Serving.Api.Jobs;

/// <summary>The Job resource of the HTTP contract. Times are UTC ("…Z").</summary>
public sealed record JobResource
{
    public required string Id { get; init; }
    public required string Status { get; init; }
    public required string Pipeline { get; init; }
    public required string Model { get; init; }
    /// <summary><c>low</c>, <c>normal</c> or <c>high</c>: as submitted, or the tenant's default.</summary>
    public required string Priority { get; init; }
    public required DateTime CreatedAt { get; init; }
    public DateTime? StartedAt { get; init; }
    public DateTime? CompletedAt { get; init; }
    public long? QueueMs { get; init; }
    public long? ExecutionMs { get; init; }
    public double Progress { get; init; }
    public int Attempts { get; init; }
    /// <summary>The typed output of a succeeded job; its <c>pipeline</c> property says which shape.</summary>
    public JobOutput? Output { get; init; }
    public JobError? Error { get; init; }
    public JsonElement? Metadata { get; init; }
    public DateTime? ResultExpiresAt { get; init; }
    /// <summary>The webhook given at submit (URL and events; the signing secret is never here).</summary>
    public Webhooks.WebhookSubscription? Webhook { get; init; }
    /// <summary>The job's OpenTelemetry trace (32 hex digits): submit, queue, batch, inference, result, events and webhook attempts.</summary>
    public string? TraceId { get; init; }
    /// <summary>The <c>model</c> the submit named (<c>resnet18</c>), where <see cref="Model"/> is the version that runs (<c>resnet18@2</c>); null when it named none.</summary>
    public string? RequestedModel { get; init; }
    /// <summary>The submit's <c>routing_key</c>, which kept the choice of version sticky.</summary>
    public string? RoutingKey { get; init; }
    /// <summary>The result cache: <c>hit</c> (the output came from the cache or from an identical job computed at the same time; no worker time), <c>miss</c> (computed, then stored), <c>off</c> (opted out or not cacheable).</summary>
    public string Cache { get; init; } = "off";
    public required JobLinks Links { get; init; }

    public static JobResource From(JobRecord job) => new()
    {
        Id = job.Id,
        Status = job.Status,
        Pipeline = job.Pipeline,
        Model = job.Model,
        Priority = job.Priority,
        CreatedAt = job.CreatedAt.UtcDateTime,
        StartedAt = job.StartedAt?.UtcDateTime,
        CompletedAt = job.CompletedAt?.UtcDateTime,
        QueueMs = job.QueueMs,
        ExecutionMs = job.ExecutionMs,
        Progress = job.Progress,
        Attempts = job.Attempts,
        Output = StoredOutput(job.OutputJson, job.Pipeline),
        Error = job.ErrorCode is { } code ? new JobError(code, job.ErrorMessage ?? string.Empty) : null,
        Metadata = StoredJson(job.MetadataJson),
        ResultExpiresAt = job.ResultExpiresAt?.UtcDateTime,
        Webhook = Webhooks.WebhookSubscription.FromJson(job.WebhookJson),
        TraceId = job.TraceId,
        RequestedModel = job.RequestedModel,
        RoutingKey = job.RoutingKey,
        Cache = job.Cache ?? "off",
        Links = new JobLinks($"/v1/jobs/{job.Id}", $"/v1/jobs/{job.Id}/events", $"/v1/jobs/{job.Id}/cancel"),
    };

    /// <summary>
    /// The stored output as its contract type. An output written before outputs carried their
    /// <c>pipeline</c> gets the job's; one that does not fit its type reads as null, like bad JSON.
    /// </summary>
    private static JobOutput? StoredOutput(string? text, string pipeline)
    {
        if (StoredJson(text) is not { ValueKind: JsonValueKind.Object } element)
        {
            return null;
        }

        try
        {
            if (element.TryGetProperty("pipeline", out _))
            {
                return element.Deserialize(JobOutputJsonContext.Default.JobOutput);
            }

            var node = JsonObject.Create(element)!.DeepClone().AsObject();
            node.Insert(0, "pipeline", pipeline);
            return node.Deserialize(JobOutputJsonContext.Default.JobOutput);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException)
        {
            return null;
        }
    }

    /// <summary>
    /// A stored JSON text as an element, or null when it is not JSON or holds text that cannot be
    /// written back (a lone surrogate): a record stored before the door checked text must not make
    /// every read of its tenant's jobs fail.
    /// </summary>
    private static JsonElement? StoredJson(string? text)
    {
        if (text is null)
        {
            return null;
        }

        try
        {
            var element = JsonDocument.Parse(text).RootElement;
            return SubmitText.FirstInvalid(element, "$") is null ? element : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

public sealed record JobError(string Code, string Message);

public sealed record JobLinks(string Self, string Events, string Cancel);
