using System.Text.Json;

namespace Async.Serving.Api.Jobs;

/// <summary>The JSON body of <c>POST /v1/jobs</c> (or the <c>request</c> part of a multipart submit, without <c>input</c>).</summary>
public sealed record SubmitRequest
{
    public string? Pipeline { get; init; }
    public string? Model { get; init; }
    public SubmitInput? Input { get; init; }
    public JsonElement? Params { get; init; }
    public int? TtlSeconds { get; init; }
    public int? TimeoutSeconds { get; init; }
    public JsonElement? Metadata { get; init; }
    public SubmitWebhook? Webhook { get; init; }
    /// <summary>Sticky routing among a model name's weighted versions (a user id, say): the same key keeps the same version.</summary>
    public string? RoutingKey { get; init; }
    /// <summary><c>low</c>, <c>normal</c> or <c>high</c>; null for the tenant's default (<see cref="TenantOptions"/>).</summary>
    public string? Priority { get; init; }
    /// <summary>False: not answered from the result cache, nor stored in it (default true).</summary>
    public bool? Cache { get; init; }
}

public sealed record SubmitWebhook
{
    public string? Url { get; init; }
    /// <summary>started, progress, completed; default completed.</summary>
    public string?[]? Events { get; init; }
}

public sealed record SubmitInput
{
    public string? Base64 { get; init; }
    public string? Url { get; init; }

    /// <summary>
    /// The JSON form's <c>base64</c>, left in the request body rather than made into a string
    /// (see <see cref="JsonSubmitBody"/>); <see cref="Base64"/> stays null there.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Base64Text? Base64Text { get; init; }
}
