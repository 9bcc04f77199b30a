using System.Text.Json;

namespace Async.Serving.Api.Webhooks;

/// <summary>The events a webhook can subscribe to, as the submit body names them.</summary>
public static class WebhookEvents
{
    public const string Started = "started";
    public const string Progress = "progress";
    public const string Completed = "completed";

    public static readonly string[] All = [Started, Progress, Completed];

    public static readonly string[] Default = [Completed];
}

/// <summary>A job's webhook: where to deliver and which events. Stored with the job; never holds a secret.</summary>
public sealed record WebhookSubscription(string Url, string[] Events)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public bool Wants(string eventName) => Events.Contains(eventName, StringComparer.Ordinal);

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static WebhookSubscription? FromJson(string? json) =>
        json is null ? null : JsonSerializer.Deserialize<WebhookSubscription>(json, Json);
}
