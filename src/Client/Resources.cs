namespace Async.Serving.Client;

/// <summary>A model the API serves (<c>GET /v1/models</c>).</summary>
public sealed record Model
{
    /// <summary><c>name@version</c>.</summary>
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required string Version { get; init; }

    /// <summary>True for the version a bare name resolves to.</summary>
    public required bool Latest { get; init; }
    public required string Pipeline { get; init; }

    /// <summary>The graph input of an <c>image.embed</c> model; null for others.</summary>
    public ModelInput? Input { get; init; }

    /// <summary>The models this one runs its work through (a video model's embedding and OCR models).</summary>
    public IReadOnlyList<string> Uses { get; init; } = [];
    public required ModelBatching Batching { get; init; }
    public required string PreferredExecutionProvider { get; init; }

    /// <summary>Workers that announced this model within the last 15 s.</summary>
    public int Workers { get; init; }

    /// <summary>Providers those workers run it on (<c>cuda</c>, <c>cpu</c>).</summary>
    public IReadOnlyList<string> ExecutionProviders { get; init; } = [];
}

public sealed record ModelInput(string Name, IReadOnlyList<int> Shape);

public sealed record ModelBatching(int MaxBatchSize, int MaxQueueDelayMs, int Instances);

/// <summary>The tenant's usage in [<see cref="From"/>, <see cref="To"/>), jobs counted by creation time (<c>GET /v1/usage</c>).</summary>
public sealed record Usage(DateTimeOffset From, DateTimeOffset To, IReadOnlyList<UsageLine> Data);

/// <summary>
/// Usage of one pipeline and model version, with what compares versions: the share of finished jobs
/// that failed, and percentiles of succeeded jobs' execution and submit-to-completion latency; and
/// the result cache's hits, hit rate and the compute they saved.
/// </summary>
public sealed record UsageLine(
    string Pipeline, string Model, long Jobs, long Succeeded, long Failed, long ComputeMs, long InputBytes,
    double? FailureRate = null, Percentiles? ExecutionMs = null, Percentiles? LatencyMs = null,
    long CacheHits = 0, double CacheHitRate = 0, long SavedComputeMs = 0);

/// <summary>Percentiles in milliseconds.</summary>
public sealed record Percentiles(double P50, double P95, double P99);

/// <summary>How a model name's submits split between its versions (<c>GET /v1/models/{name}/routing</c>).</summary>
public sealed record ModelRouting
{
    public required string Model { get; init; }
    public required string Pipeline { get; init; }

    /// <summary>The newest version: where the bare name goes without weights.</summary>
    public required string DefaultVersion { get; init; }
    public IReadOnlyList<string> Versions { get; init; } = [];

    /// <summary>The weights as set; empty without a routing table.</summary>
    public IReadOnlyDictionary<string, int> Weights { get; init; } = new Dictionary<string, int>();

    /// <summary>Each version's share in percent.</summary>
    public IReadOnlyDictionary<string, double> Percent { get; init; } = new Dictionary<string, double>();
    public DateTimeOffset? UpdatedAt { get; init; }
    public string? UpdatedBy { get; init; }
}

/// <summary>An API key of the tenant; <see cref="Prefix"/> is its first characters, never the secret.</summary>
public sealed record ApiKey(string Id, string Name, string Prefix, bool Admin, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? RevokedAt);

/// <summary>A new API key; <see cref="Key"/> is the secret, shown this once.</summary>
public sealed record CreatedApiKey(string Id, string Key, string Name, string Prefix, bool Admin, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt);

/// <summary>
/// One webhook delivery attempt. <see cref="Status"/> is its outcome: <c>delivered</c>, <c>retrying</c>,
/// <c>failed</c>, <c>skipped</c> or <c>disabled</c>; <see cref="JobId"/> is null for a <c>webhook.test</c>.
/// </summary>
public sealed record Delivery(
    string Id, string? JobId, string MessageId, string EventType, string Url, int Attempt, string Status, string Detail, DateTimeOffset At, bool Redeliverable);

/// <summary>One page of <c>GET /v1/webhooks/deliveries</c>, newest first.</summary>
public sealed record DeliveryPage(IReadOnlyList<Delivery> Data, string? NextCursor);

/// <summary>Filters and paging of <c>GET /v1/webhooks/deliveries</c>; <see cref="Status"/> is an outcome (see <see cref="Delivery.Status"/>).</summary>
public sealed record DeliveryQuery(string? JobId = null, string? Status = null, int? Limit = null, string? Cursor = null);

/// <summary>
/// A redelivery taken: the message of delivery <see cref="RedeliveryOf"/> is sent again with the same
/// webhook id; <see cref="HangfireJob"/> is its first attempt in the dashboard.
/// </summary>
public sealed record Redelivery(string RedeliveryOf, string MessageId, string? JobId, string EventType, string Url, string HangfireJob);

/// <summary>A <c>webhook.test</c> event queued for delivery; its outcome is in the deliveries.</summary>
public sealed record TestWebhook(string MessageId, string Url, string HangfireJob);

/// <summary>A URL deliveries go to again; <see cref="WasDisabled"/> says whether a 410 had disabled it.</summary>
public sealed record EndpointEnabled(string Url, bool WasDisabled);

/// <summary>A new signing secret, and until when the one it replaced still signs deliveries.</summary>
public sealed record RotatedWebhookSecret(string Secret, DateTimeOffset PreviousSecretExpiresAt);
