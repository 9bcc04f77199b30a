namespace Async.Serving.Jobs;

/// <summary>One job as the job store holds it. Times are UTC.</summary>
public sealed record JobRecord
{
    public required string Id { get; init; }
    public required string TenantId { get; init; }
    public required string Status { get; init; }
    public required string Pipeline { get; init; }
    public required string Model { get; init; }
    /// <summary><c>low</c>, <c>normal</c> or <c>high</c> (<see cref="Contracts.JobPriorities"/>); normal for jobs stored before priorities.</summary>
    public string Priority { get; init; } = Contracts.JobPriorities.Normal;
    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? CompletedAt { get; init; }
    public long? QueueMs { get; init; }
    public long? ExecutionMs { get; init; }
    public double Progress { get; init; }
    public int Attempts { get; init; }
    public long InputBytes { get; init; }
    /// <summary>The output as a JSON document, while it is retained.</summary>
    public string? OutputJson { get; init; }
    public string? ErrorCode { get; init; }
    public string? ErrorMessage { get; init; }
    public string? MetadataJson { get; init; }
    /// <summary>The webhook subscription (<c>{"url":…,"events":[…]}</c>) given at submit, if any.</summary>
    public string? WebhookJson { get; init; }
    public DateTimeOffset? ResultExpiresAt { get; init; }
    /// <summary>When a still queued job expires (its <c>ttl_seconds</c> passed).</summary>
    public DateTimeOffset? ExpiresAt { get; init; }
    /// <summary>The worker that started the latest attempt.</summary>
    public string? WorkerId { get; init; }
    /// <summary>
    /// The W3C <c>traceparent</c> of the submit's span: the job's trace. The outbox relay and each
    /// webhook attempt continue that trace from here (see <c>ServingTelemetry.StartFromStored</c>).
    /// </summary>
    public string? TraceParent { get; init; }

    /// <summary>
    /// The <c>model</c> the client sent (<c>name</c> or <c>name@version</c>; null when it named none),
    /// where <see cref="Model"/> is the version that runs: a bare name is routed by the model's weights.
    /// </summary>
    public string? RequestedModel { get; init; }

    /// <summary>The submit's <c>routing_key</c>: the same key keeps the same version while the weights stay.</summary>
    public string? RoutingKey { get; init; }
    /// <summary>The result cache's part in the job: <c>hit</c>, <c>miss</c>, or null (<c>off</c>: not looked up).</summary>
    public string? Cache { get; init; }

    /// <summary>For a cache hit: the execution milliseconds of the job that computed the output, which this one did not spend.</summary>
    public long? SavedMs { get; init; }

    /// <summary>For a job that follows another computing the same output (single flight): that job's id, until it ends.</summary>
    public string? CacheLeader { get; init; }

    /// <summary>The job's OpenTelemetry trace id (32 hex digits), from <see cref="TraceParent"/>.</summary>
    public string? TraceId => Hosting.ServingTelemetry.TraceIdOf(TraceParent);
}
