using System.Text.Json;
using System.Text.Json.Serialization;

namespace Async.Serving.Client;

/// <summary>The API's wire format: snake_case, nulls left out; source-generated.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.AllowReadingFromString,
    AllowOutOfOrderMetadataProperties = true)]
[JsonSerializable(typeof(Job))]
[JsonSerializable(typeof(JobPage))]
[JsonSerializable(typeof(JobEvent))]
[JsonSerializable(typeof(DataList<Model>))]
[JsonSerializable(typeof(Usage))]
[JsonSerializable(typeof(DataList<ApiKey>))]
[JsonSerializable(typeof(ApiKey))]
[JsonSerializable(typeof(CreatedApiKey))]
[JsonSerializable(typeof(DeliveryPage))]
[JsonSerializable(typeof(Redelivery))]
[JsonSerializable(typeof(TestWebhook))]
[JsonSerializable(typeof(EndpointEnabled))]
[JsonSerializable(typeof(WebhookSecret))]
[JsonSerializable(typeof(RotatedWebhookSecret))]
[JsonSerializable(typeof(ProblemDocument))]
[JsonSerializable(typeof(SubmitBody))]
[JsonSerializable(typeof(CreateKeyBody))]
[JsonSerializable(typeof(UrlBody))]
[JsonSerializable(typeof(ModelRouting))]
[JsonSerializable(typeof(RoutingBody))]
[JsonSerializable(typeof(WebhookPayload))]
[JsonSerializable(typeof(WebhookEvent))]
[JsonSerializable(typeof(Batch))]
[JsonSerializable(typeof(BatchPage))]
[JsonSerializable(typeof(BatchResult))]
[JsonSerializable(typeof(BatchLineBody))]
[JsonSerializable(typeof(BatchRequestBody))]
internal sealed partial class ServingClientJsonContext : JsonSerializerContext;

/// <summary>The serializer options of the API's wire format, for writing this library's types as the API writes them.</summary>
public static class ServingJson
{
    /// <summary>Read-only options over the library's source-generated context.</summary>
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions(ServingClientJsonContext.Default.Options);
        options.MakeReadOnly();
        return options;
    }
}

internal sealed record DataList<T>(IReadOnlyList<T> Data);

internal sealed record WebhookSecret(string Secret);

internal sealed record CreateKeyBody(string? Name, bool Admin, int? ExpiresInDays);

internal sealed record UrlBody(string Url);

internal sealed record RoutingBody(IReadOnlyDictionary<string, int> Weights);

/// <summary>The JSON of a submit, or of the <c>request</c> part of a multipart submit (without <c>input</c>).</summary>
internal sealed record SubmitBody
{
    public required string Pipeline { get; init; }
    public string? Model { get; init; }
    public SubmitInputBody? Input { get; init; }
    public JsonElement? Params { get; init; }
    public int? TtlSeconds { get; init; }
    public int? TimeoutSeconds { get; init; }
    public JsonElement? Metadata { get; init; }
    public SubmitWebhookBody? Webhook { get; init; }
    public string? RoutingKey { get; init; }
    public string? Priority { get; init; }
    public bool? Cache { get; init; }

    public static SubmitBody From(SubmitRequest request, SubmitInputBody? input) => new()
    {
        Pipeline = request.Pipeline,
        Model = request.Model,
        Input = input,
        Params = request.Params,
        TtlSeconds = request.TtlSeconds,
        TimeoutSeconds = request.TimeoutSeconds,
        Metadata = request.Metadata,
        Webhook = request.Webhook is { } w ? new SubmitWebhookBody(w.Url.AbsoluteUri, w.Events) : null,
        RoutingKey = request.RoutingKey,
        Priority = request.Priority,
        Cache = request.Cache ? null : false,
    };
}

internal sealed record SubmitInputBody(string Url);

internal sealed record SubmitWebhookBody(string Url, IReadOnlyList<string>? Events);

/// <summary>A webhook delivery's body: <c>data</c> is a job for <c>job.*</c> events.</summary>
internal sealed record WebhookPayload(string Type, DateTimeOffset Timestamp, JsonElement Data);
