using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Async.Serving.Cli.Submit;

/// <summary>
/// Idempotency keys derived from what a job is: the SHA-256 of the file's bytes, the pipeline, the
/// model, the parameters (canonical JSON, so key order does not matter) and the priority when one is
/// given. The same file submitted the same way gets the same key on every run, so a rerun after
/// Ctrl-C gets the job the first run made (the API keeps a key 24 h) instead of a second one; a
/// rerun that changes any of them (another <c>--model</c>, another <c>--priority</c>) gets another
/// key, and so another job, rather than the API's <c>idempotency_mismatch</c> for the old key.
/// </summary>
public static class SubmitKeys
{
    public const string Prefix = "serving-cli-v1-";

    public static async Task<byte[]> HashFileAsync(string path, CancellationToken cancellationToken)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using (stream.ConfigureAwait(false))
        {
            return await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false);
        }
    }

    public static string Derive(ReadOnlySpan<byte> contentSha256, string pipeline, string? model, JsonElement? parameters, string? priority = null)
    {
        var text = string.Join('\n',
            Convert.ToHexStringLower(contentSha256), pipeline, model ?? string.Empty, parameters is { } p ? Canonical(p) : string.Empty);
        if (priority is not null)
        {
            // Only then, so that the keys of runs without --priority (and of runs before it existed) stay the same.
            text += "\npriority:" + priority;
        }

        return Prefix + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>
    /// The key of a new attempt after <paramref name="previousJobId"/> ended without success
    /// (<c>--retry-failed</c>): still derived, so a rerun of that run finds the retry too.
    /// </summary>
    public static string Retry(string key, string previousJobId) =>
        Prefix + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{key}\nretry-after\n{previousJobId}")));

    /// <summary>JSON with object members sorted by name and no insignificant white space.</summary>
    public static string Canonical(JsonElement element)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            Write(writer, element);
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void Write(Utf8JsonWriter writer, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var member in element.EnumerateObject().OrderBy(m => m.Name, StringComparer.Ordinal))
                {
                    writer.WritePropertyName(member.Name);
                    Write(writer, member.Value);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                {
                    Write(writer, item);
                }

                writer.WriteEndArray();
                break;
            default:
                element.WriteTo(writer);
                break;
        }
    }
}
