using System.Text.Json;
using System.Text.Json.Serialization;
using Async.Serving.Contracts.Outputs;

namespace Async.Serving.Client;

/// <summary>A job as <c>GET /v1/jobs/{id}</c> answers it. Times are UTC.</summary>
public sealed record Job
{
    public required string Id { get; init; }

    /// <summary>One of <see cref="JobStatuses"/>.</summary>
    public required string Status { get; init; }

    public required string Pipeline { get; init; }

    /// <summary>The model as <c>name@version</c>.</summary>
    public required string Model { get; init; }

    /// <summary><c>low</c>, <c>normal</c> or <c>high</c>: as submitted, or the tenant's default (<see cref="JobPriorities"/>).</summary>
    public string Priority { get; init; } = JobPriorities.Normal;

    public required DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? StartedAt { get; init; }

    public DateTimeOffset? CompletedAt { get; init; }

    /// <summary>Milliseconds from submit to the start of the last attempt.</summary>
    public long? QueueMs { get; init; }

    /// <summary>Milliseconds the last attempt ran.</summary>
    public long? ExecutionMs { get; init; }

    /// <summary>0 to 1.</summary>
    public double Progress { get; init; }

    public int Attempts { get; init; }

    /// <summary>
    /// The output of a succeeded job: <see cref="ImageEmbedOutput"/>, <see cref="ImageOcrOutput"/> or
    /// <see cref="VideoAnalyzeOutput"/>; null before then, when the list leaves outputs out, and for an
    /// output this version of the library does not know.
    /// </summary>
    [JsonConverter(typeof(LenientJobOutputConverter))]
    public JobOutput? Output { get; init; }

    public JobError? Error { get; init; }

    /// <summary>The metadata given at submit, as given.</summary>
    public JsonElement? Metadata { get; init; }

    /// <summary>When the output is removed from the store.</summary>
    public DateTimeOffset? ResultExpiresAt { get; init; }

    /// <summary>The webhook given at submit.</summary>
    public WebhookSubscription? Webhook { get; init; }

    /// <summary>The job's OpenTelemetry trace id (32 hex digits), to find its trace in Jaeger, Tempo or any OTLP backend.</summary>
    public string? TraceId { get; init; }

    /// <summary>The <c>model</c> the submit named (<c>resnet18</c>); <see cref="Model"/> is the version that runs (<c>resnet18@2</c>).</summary>
    public string? RequestedModel { get; init; }

    /// <summary>The submit's routing key.</summary>
    public string? RoutingKey { get; init; }
    /// <summary>
    /// The result cache: <c>hit</c> (the output came from the cache, or from an identical job running
    /// at the same time; no worker time), <c>miss</c> (computed, then stored), <c>off</c>.
    /// </summary>
    public string? Cache { get; init; }

    /// <summary>True once the job has ended: succeeded, failed, cancelled or expired.</summary>
    [JsonIgnore]
    public bool IsTerminal => JobStatuses.IsTerminal(Status);
}

/// <summary>Why a job failed (<c>timeout</c>, <c>input_invalid</c>, …).</summary>
public sealed record JobError(string Code, string Message);

/// <summary>
/// One server-sent event of a job: <see cref="Type"/> is <c>status</c> (a new state), <c>progress</c>
/// (the same state, further along) or <c>completed</c> (the last one; the job is terminal).
/// <see cref="Id"/> resumes the stream after this event.
/// </summary>
public sealed record JobEvent(string Id, string Type, Job Job);

/// <summary>One page of <c>GET /v1/jobs</c>, newest first; <see cref="NextCursor"/> is null on the last page.</summary>
public sealed record JobPage(IReadOnlyList<Job> Data, string? NextCursor);

/// <summary>Filters and paging of <c>GET /v1/jobs</c>; <see cref="Limit"/> is 1 to 100 (20 when null).</summary>
public sealed record JobQuery(string? Status = null, string? Pipeline = null, int? Limit = null, string? Cursor = null);

/// <summary>A webhook for a job: the URL and the events it gets (<c>started</c>, <c>progress</c>, <c>completed</c>; <c>completed</c> when null).</summary>
public sealed record WebhookSubscription(Uri Url, IReadOnlyList<string>? Events = null);

/// <summary>
/// Reads a job's <c>output</c> through the contract's own <see cref="JobOutputJsonContext"/>; an
/// output it cannot read (a pipeline newer than this library) is null rather than an error that
/// would hide the job's status.
/// </summary>
internal sealed class LenientJobOutputConverter : JsonConverter<JobOutput?>
{
    public override JobOutput? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        using var document = JsonDocument.ParseValue(ref reader);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        try
        {
            return document.RootElement.Deserialize(JobOutputJsonContext.Default.JobOutput);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException)
        {
            return null;
        }
    }

    public override void Write(Utf8JsonWriter writer, JobOutput? value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (value is null)
        {
            writer.WriteNullValue();
            return;
        }

        JsonSerializer.Serialize(writer, value, JobOutputJsonContext.Default.JobOutput);
    }
}
