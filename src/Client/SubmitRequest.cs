using System.Text.Json;

namespace Async.Serving.Client;

/// <summary>
/// One job to submit (<c>POST /v1/jobs</c>). A file, stream or bytes input goes as multipart
/// (a <c>file</c> part and a <c>request</c> part with the other fields); a URL input as JSON.
/// </summary>
public sealed record SubmitRequest
{
    /// <summary><c>image.embed</c>, <c>image.ocr</c> or <c>video.analyze</c>.</summary>
    public required string Pipeline { get; init; }

    /// <summary>A model name, or <c>name@version</c>; null for the pipeline's default model.</summary>
    public string? Model { get; init; }

    public required JobInput Input { get; init; }

    /// <summary>Pipeline parameters, a JSON object (for example <c>{"sample_fps": 2}</c> for video).</summary>
    public JsonElement? Params { get; init; }

    /// <summary>A JSON object echoed back on the job.</summary>
    public JsonElement? Metadata { get; init; }

    public WebhookSubscription? Webhook { get; init; }

    /// <summary>
    /// Keeps the choice among a model name's weighted versions sticky (a user id, say): while the
    /// weights stay, the same key gets the same version. Ignored for <c>name@version</c>.
    /// </summary>
    public string? RoutingKey { get; init; }

    /// <summary>
    /// Sent as <c>Idempotency-Key</c>: the same key and the same request give the first job back. When
    /// null the client makes one per call, so that its own retries never submit twice.
    /// </summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>Seconds (0 to 60) the submit may wait for the job to finish (<c>?wait=N</c>).</summary>
    public int? Wait { get; init; }

    /// <summary>How long the job may wait in the queue before it expires.</summary>
    public int? TtlSeconds { get; init; }

    /// <summary>The limit of the job's execution, after which it fails with <c>timeout</c>.</summary>
    public int? TimeoutSeconds { get; init; }

    /// <summary>
    /// <c>low</c>, <c>normal</c> or <c>high</c> (<see cref="JobPriorities"/>): higher jobs of a model
    /// are taken first, lower ones still progress. Null for the tenant's default.
    /// </summary>
    public string? Priority { get; init; }
    /// <summary>False: the job is neither answered from the result cache nor stored in it (<c>"cache": false</c>).</summary>
    public bool Cache { get; init; } = true;
}

/// <summary>A job's input: a file, a stream, bytes, or a URL the API fetches.</summary>
public abstract record JobInput
{
    private protected JobInput()
    {
    }

    /// <summary>A local file, read when the request is sent (and again on a retry).</summary>
    public static JobInput FromFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new FileInput(path, MediaTypes.FromFileName(path));
    }

    /// <summary>
    /// A stream, read when the request is sent. A stream that cannot seek can be sent once: a request
    /// that fails on the way is then not retried.
    /// </summary>
    public static JobInput FromStream(Stream stream, string fileName, string? contentType = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        return new StreamInput(stream, fileName, contentType ?? MediaTypes.FromFileName(fileName));
    }

    public static JobInput FromBytes(ReadOnlyMemory<byte> bytes, string fileName = "input", string? contentType = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        return new BytesInput(bytes, fileName, contentType ?? MediaTypes.FromFileName(fileName));
    }

    /// <summary>An absolute http or https URL that the API fetches.</summary>
    public static JobInput FromUrl(Uri url)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (!url.IsAbsoluteUri)
        {
            throw new ArgumentException("The input URL must be absolute.", nameof(url));
        }

        return new UrlInput(url);
    }
}

internal sealed record FileInput(string Path, string ContentType) : JobInput;

internal sealed record StreamInput(Stream Stream, string FileName, string ContentType) : JobInput;

internal sealed record BytesInput(ReadOnlyMemory<byte> Bytes, string FileName, string ContentType) : JobInput;

internal sealed record UrlInput(Uri Url) : JobInput;

/// <summary>The media type a file's extension names; the API sniffs the bytes anyway, so an unknown one is <c>application/octet-stream</c>.</summary>
internal static class MediaTypes
{
    public const string OctetStream = "application/octet-stream";

    private static readonly Dictionary<string, string> ByExtension = new(StringComparer.OrdinalIgnoreCase)
    {
        [".jpg"] = "image/jpeg",
        [".jpeg"] = "image/jpeg",
        [".png"] = "image/png",
        [".webp"] = "image/webp",
        [".gif"] = "image/gif",
        [".bmp"] = "image/bmp",
        [".mp4"] = "video/mp4",
        [".m4v"] = "video/mp4",
        [".mov"] = "video/quicktime",
        [".webm"] = "video/webm",
        [".mkv"] = "video/x-matroska",
        [".avi"] = "video/x-msvideo",
        [".mpg"] = "video/mpeg",
        [".mpeg"] = "video/mpeg",
        [".flv"] = "video/x-flv",
        [".ogv"] = "video/ogg",
        [".ogg"] = "video/ogg",
        [".asf"] = "video/x-ms-asf",
        [".wmv"] = "video/x-ms-wmv",
    };

    public static string FromFileName(string fileName) =>
        ByExtension.TryGetValue(Path.GetExtension(fileName), out var type) ? type : OctetStream;
}
