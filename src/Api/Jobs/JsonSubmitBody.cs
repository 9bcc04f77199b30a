using System.Buffers.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Async.Serving.Api.Jobs;

/// <summary>
/// The JSON form of a submit, read so that a large <c>input.base64</c> costs the body once plus the
/// decoded bytes once: the body is read into one buffer while its bytes are counted against the cap
/// (a larger body is refused as soon as the cap is passed, before it is all read), and
/// <c>input.base64</c> is never made into a string: <see cref="InputConverter"/> notes where its text
/// lies in the buffer, and it is decoded from there once the pipeline's limit is known.
/// </summary>
internal static class JsonSubmitBody
{
    private const int FirstChunk = 64 * 1024;

    /// <summary>
    /// The body, or null once it is known to be over its cap: <paramref name="max"/>, or
    /// <paramref name="capFor"/> of the pipeline when <c>pipeline</c> comes before <c>input</c> in the
    /// body (a JSON image job cannot need as much as a video), which is learnt from the first bytes:
    /// with a <c>Content-Length</c> over that cap, nothing more is read.
    /// </summary>
    public static async Task<(ReadOnlyMemory<byte>? Body, long Cap)> ReadAsync(HttpRequest request, long max, Func<string, long> capFor, CancellationToken cancellationToken)
    {
        var buffer = new byte[(int)Math.Min(FirstChunk, max + 1)];
        var read = 0;
        var sniffed = false;
        while (true)
        {
            if (read == buffer.Length)
            {
                if (read > max)
                {
                    return (null, max);
                }

                // The declared length at once (one more byte, to see a body longer than declared), else doubling.
                var size = request.ContentLength is { } declared && declared + 1 > read ? declared + 1 : (long)buffer.Length * 2;
                var grown = GC.AllocateUninitializedArray<byte>((int)Math.Min(size, max + 1));
                buffer.AsSpan(0, read).CopyTo(grown);
                buffer = grown;
            }

            var n = await request.Body.ReadAsync(buffer.AsMemory(read), cancellationToken).ConfigureAwait(false);
            read += n;
            if (!sniffed && (n == 0 || read >= FirstChunk || read == buffer.Length))
            {
                sniffed = true;
                if (LeadingPipeline(buffer.AsSpan(0, read)) is { } pipeline)
                {
                    max = Math.Min(max, capFor(pipeline));
                }
            }

            if (read > max || request.ContentLength > max)
            {
                return (null, max);
            }

            if (n == 0)
            {
                return (buffer.AsMemory(0, read), max);
            }
        }
    }

    /// <summary>The top-level <c>pipeline</c> when it comes before <c>input</c> within <paramref name="prefix"/>; else null.</summary>
    internal static string? LeadingPipeline(ReadOnlySpan<byte> prefix)
    {
        var reader = new Utf8JsonReader(prefix, isFinalBlock: false, state: default);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isPipeline = reader.ValueTextEquals("pipeline"u8) || string.Equals(reader.GetString(), "pipeline", StringComparison.OrdinalIgnoreCase);
                var isInput = !isPipeline && string.Equals(reader.GetString(), "input", StringComparison.OrdinalIgnoreCase);
                if (isInput || !reader.Read())
                {
                    return null;
                }

                if (isPipeline)
                {
                    return reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                }

                if (!reader.TrySkip())
                {
                    return null;
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Not JSON, or not text: the full read reports it.
        }

        return null;
    }

    /// <summary>The submit, with <c>input.base64</c> left in <paramref name="body"/> (see <see cref="SubmitInput.Base64Text"/>).</summary>
    public static SubmitRequest? Deserialize(ReadOnlyMemory<byte> body, JsonSerializerOptions options) =>
        JsonSerializer.Deserialize<SubmitRequest>(body.Span, options);

    /// <summary>Options that read <see cref="SubmitInput"/> through <see cref="InputConverter"/>.</summary>
    public static JsonSerializerOptions WithInputConverter(JsonSerializerOptions options) =>
        new(options) { Converters = { new InputConverter() } };

    /// <summary>
    /// The decoded input; <c>null</c> with <paramref name="tooLarge"/> when it would be over
    /// <paramref name="maxBytes"/>, or without when the text is not base64.
    /// </summary>
    public static byte[]? Decode(ReadOnlySpan<byte> text, long maxBytes, out bool tooLarge)
    {
        // Refused without a scan when the text is twice what the limit needs (line breaks and spaces
        // are ignored by the decoder, but not that many); otherwise the exact decoded length decides.
        tooLarge = text.Length > (((maxBytes + 2) / 3 * 4) * 2) + 1024;
        if (tooLarge)
        {
            return null;
        }

        if (!Base64.IsValid(text, out var length))
        {
            return null;
        }

        tooLarge = length > maxBytes;
        if (tooLarge)
        {
            return null;
        }

        var input = GC.AllocateUninitializedArray<byte>(length);
        var status = Base64.DecodeFromUtf8(text, input, out _, out var written);
        return status == System.Buffers.OperationStatus.Done && written == length ? input : null;
    }

    /// <summary>
    /// Reads <c>input</c> without materialising <c>base64</c>: it records the value's place in the
    /// body (the serializer reads the body as one span, so <see cref="Utf8JsonReader.TokenStartIndex"/>
    /// is an offset into it), or, when the value has JSON escapes (<c>\/</c>, <c>\n</c>), its unescaped bytes.
    /// </summary>
    internal sealed class InputConverter : JsonConverter<SubmitInput>
    {
        public override SubmitInput Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new JsonException("input must be an object.");
            }

            var input = new SubmitInput();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                var name = reader.GetString();
                reader.Read();
                if (string.Equals(name, "base64", StringComparison.OrdinalIgnoreCase))
                {
                    input = reader.TokenType switch
                    {
                        JsonTokenType.Null => input with { Base64Text = null },
                        JsonTokenType.String when reader.ValueIsEscaped => input with { Base64Text = new Base64Text(Unescape(ref reader)) },
                        JsonTokenType.String => input with
                        {
                            Base64Text = new Base64Text(null) { Start = checked((int)reader.TokenStartIndex + 1), Length = reader.ValueSpan.Length },
                        },
                        _ => throw new JsonException("input.base64 must be a string."),
                    };
                }
                else if (string.Equals(name, "url", StringComparison.OrdinalIgnoreCase))
                {
                    input = input with { Url = reader.TokenType == JsonTokenType.Null ? null : reader.GetString() };
                }
                else
                {
                    reader.Skip();
                }
            }

            return input;
        }

        public override void Write(Utf8JsonWriter writer, SubmitInput value, JsonSerializerOptions options) =>
            throw new NotSupportedException("A submit's input is only read.");

        private static byte[] Unescape(ref Utf8JsonReader reader)
        {
            var unescaped = GC.AllocateUninitializedArray<byte>(reader.ValueSpan.Length);
            var written = reader.CopyString(unescaped);
            return unescaped[..written];
        }
    }
}

/// <summary>Where the text of <c>input.base64</c> is: a range of the request body, or its own unescaped bytes.</summary>
public sealed record Base64Text(byte[]? Unescaped)
{
    public int Start { get; init; }

    public int Length { get; init; }

    public ReadOnlySpan<byte> In(ReadOnlySpan<byte> body) => Unescaped ?? body.Slice(Start, Length);

    public bool IsEmpty => Unescaped is null ? Length == 0 : Unescaped.Length == 0;
}
