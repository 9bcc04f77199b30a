using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Async.Serving.Api.Cache;

/// <summary>
/// The cache key of a job: SHA-256 over the scope (the tenant, or <c>*</c> when the cache is
/// shared), the pipeline, the resolved model (<c>name@version</c>) and its files' fingerprint, the
/// params as canonical JSON, and the SHA-256 of the input's bytes (for <c>input.url</c>, of the
/// bytes fetched). Lower-case hex, so its last digit names the job store shard it lives in.
/// </summary>
public static class CacheKeys
{
    public static string Compute(string scope, string pipeline, string modelId, string fingerprint, string? paramsJson, ReadOnlySpan<byte> input) =>
        ComputeFromHash(scope, pipeline, modelId, fingerprint, paramsJson, SHA256.HashData(input));

    /// <summary>The same key from the input's SHA-256 (computed while the input streamed to the blob store; see <c>InputStager</c>).</summary>
    public static string ComputeFromHash(string scope, string pipeline, string modelId, string fingerprint, string? paramsJson, ReadOnlySpan<byte> inputSha256)
    {
        var text = string.Join('\n', "v1", scope, pipeline, modelId, fingerprint, CanonicalParams(paramsJson), Convert.ToHexStringLower(inputSha256));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>
    /// Params as canonical JSON: object keys sorted (ordinal), no whitespace, numbers as written;
    /// absent, <c>null</c> and <c>{}</c> are the same.
    /// </summary>
    public static string CanonicalParams(string? json)
    {
        if (string.IsNullOrWhiteSpace(json))
        {
            return "{}";
        }

        using var document = JsonDocument.Parse(json);
        if (document.RootElement.ValueKind == JsonValueKind.Null)
        {
            return "{}";
        }

        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            Write(document.RootElement, writer);
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void Write(JsonElement element, Utf8JsonWriter writer)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var property in element.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
                {
                    writer.WritePropertyName(property.Name);
                    Write(property.Value, writer);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                {
                    Write(item, writer);
                }

                writer.WriteEndArray();
                break;
            default:
                element.WriteTo(writer);
                break;
        }
    }
}
