using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Jobs;
using Async.Serving.Api.Webhooks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace Async.Serving.Api.Batches;

/// <summary>The batch-level fields: the JSON of a multipart <c>request</c> part.</summary>
public sealed record BatchRequest
{
    /// <summary>Where <c>batch.completed</c> is delivered (signed like job webhooks) once every line has ended.</summary>
    public BatchWebhook? Webhook { get; init; }

    /// <summary>Echoed back on the batch, bounded like a job's.</summary>
    public JsonElement? Metadata { get; init; }
}

public sealed record BatchWebhook
{
    public string? Url { get; init; }
}

/// <summary>A batch stored by this request, or (<see cref="Replayed"/>) the one that an earlier request with the same <c>Idempotency-Key</c> and the same batch made.</summary>
internal sealed record BatchCreated(BatchRecord Batch, bool Replayed);

/// <summary>
/// Reads <c>POST /v1/batches</c>: a JSONL body (or the <c>file</c> part of a multipart body) is read
/// line by line and each line copied into PostgreSQL as it arrives, so memory holds one line whatever
/// the file's size. Only the framing is checked here (each line one JSON object with a unique
/// <c>custom_id</c>, the line count, the byte limit); each line's fields are checked when it becomes a
/// job (<see cref="BatchRunner"/>), and a line that fails then is an error of that line, not of the batch.
/// With an <c>Idempotency-Key</c> the bytes of the file are hashed as they are read (never held), and
/// the key is claimed once the file has been read, before the batch is committed
/// (<see cref="IdempotencyKeys"/>, <see cref="IdempotencyScope.Batches"/>).
/// </summary>
internal sealed class BatchUpload(
    BatchStore store,
    IdempotencyKeys idempotency,
    WebhookUrlCheck webhookUrls,
    IOptions<BatchOptions> options,
    IOptions<JobLimitsOptions> limits,
    IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json,
    TimeProvider clock)
{
    /// <summary>The media types of a JSONL body.</summary>
    public static readonly string[] JsonlTypes = ["application/jsonl", "application/x-ndjson", "application/jsonlines", "application/x-jsonlines"];

    /// <summary>How many framing errors a 400 lists; reading stops there.</summary>
    private const int MaxListedErrors = 20;

    private const int MaxRequestPartBytes = 64 * 1024;

    public async Task<(BatchCreated? Created, ProblemHttpResult? Problem)> CreateAsync(
        HttpRequest request, string tenantId, string? webhookUrl, string? idempotencyKey, CancellationToken cancellationToken)
    {
        var max = options.Value.MaxBytes;
        if (request.ContentLength > max)
        {
            return (null, TooLarge($"The request body is {request.ContentLength:N0} bytes; the limit is {max:N0}."));
        }

        if (request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
        {
            feature.MaxRequestBodySize = max;
        }

        try
        {
            if (request.HasFormContentType)
            {
                return await ReadMultipartAsync(request, tenantId, webhookUrl, idempotencyKey, cancellationToken).ConfigureAwait(false);
            }

            if (request.ContentType is { } type && MediaTypeHeaderValue.TryParse(type, out var media)
                && JsonlTypes.Contains(media.MediaType.Value, StringComparer.OrdinalIgnoreCase))
            {
                var (fields, problem) = await CheckFieldsAsync(new BatchRequest { Webhook = webhookUrl is null ? null : new BatchWebhook { Url = webhookUrl } }, cancellationToken).ConfigureAwait(false);
                return problem is not null
                    ? (null, problem)
                    : await ReadLinesAsync(request, request.Body, tenantId, fields!.Value, idempotencyKey, cancellationToken).ConfigureAwait(false);
            }

            return (null, ApiProblems.Problem(StatusCodes.Status415UnsupportedMediaType, ApiProblems.UnsupportedMediaType, "Unsupported request type.",
                "Send the JSONL file as application/jsonl (or application/x-ndjson), or multipart/form-data with a 'file' part and an optional 'request' part."));
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, TooLarge($"The request body is larger than the limit of {max:N0} bytes."));
        }
        catch (BadHttpRequestException ex)
        {
            return (null, ApiProblems.Invalid($"The request body could not be read: {ex.Message}"));
        }
        catch (InvalidDataException ex)
        {
            return (null, ex.Message.Contains("limit", StringComparison.OrdinalIgnoreCase)
                ? TooLarge(ex.Message)
                : ApiProblems.Invalid($"The multipart body is not valid: {ex.Message}"));
        }
        catch (IOException ex) when (!cancellationToken.IsCancellationRequested)
        {
            return (null, ApiProblems.Invalid($"The request body ended early: {ex.Message}"));
        }
    }

    private async Task<(BatchCreated?, ProblemHttpResult?)> ReadMultipartAsync(
        HttpRequest request, string tenantId, string? webhookUrl, string? idempotencyKey, CancellationToken cancellationToken)
    {
        var boundary = MediaTypeHeaderValue.TryParse(request.ContentType, out var media) ? HeaderUtilities.RemoveQuotes(media.Boundary).Value : null;
        if (boundary is not { Length: > 0 and <= 70 })
        {
            return (null, ApiProblems.Invalid("A multipart/form-data body needs a boundary parameter of 1 to 70 characters in its Content-Type.",
                new Dictionary<string, string[]> { ["Content-Type"] = ["Missing or invalid boundary."] }));
        }

        var reader = new MultipartReader(boundary, request.Body) { BodyLengthLimit = options.Value.MaxBytes };
        var fields = new BatchRequest { Webhook = webhookUrl is null ? null : new BatchWebhook { Url = webhookUrl } };
        while (await reader.ReadNextSectionAsync(cancellationToken).ConfigureAwait(false) is { } section)
        {
            var name = ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
                ? HeaderUtilities.RemoveQuotes(disposition.Name).Value
                : null;
            if (name == "request")
            {
                // Before the file: the batch-level fields are checked before any line is read.
                using var text = new MemoryStream();
                var buffer = new byte[8192];
                int n;
                while ((n = await section.Body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                {
                    if (text.Length + n > MaxRequestPartBytes)
                    {
                        return (null, TooLarge($"The 'request' part is larger than {MaxRequestPartBytes:N0} bytes."));
                    }

                    text.Write(buffer, 0, n);
                }

                try
                {
                    fields = JsonSerializer.Deserialize<BatchRequest>(text.GetBuffer().AsSpan(0, (int)text.Length), json.Value.SerializerOptions) ?? fields;
                }
                catch (JsonException ex)
                {
                    return (null, ApiProblems.Invalid($"The 'request' part is not valid JSON: {ex.Message}"));
                }
            }
            else if (name == "file")
            {
                var (checkedFields, problem) = await CheckFieldsAsync(fields, cancellationToken).ConfigureAwait(false);
                return problem is not null
                    ? (null, problem)
                    : await ReadLinesAsync(request, section.Body, tenantId, checkedFields!.Value, idempotencyKey, cancellationToken).ConfigureAwait(false);
            }
        }

        return (null, ApiProblems.Invalid("The multipart body has no 'file' part (the 'request' part, if any, goes before it).",
            new Dictionary<string, string[]> { ["file"] = ["Required."] }));
    }

    /// <summary>The webhook URL (form and address) and the metadata, as for a job.</summary>
    private async Task<((string? WebhookUrl, string? MetadataJson)?, ProblemHttpResult?)> CheckFieldsAsync(BatchRequest fields, CancellationToken cancellationToken)
    {
        string? url = null;
        if (fields.Webhook is { } webhook)
        {
            if (webhook.Url is not { Length: > 0 and <= 2048 } text || !SubmitText.IsValid(text)
                || !Uri.TryCreate(text, UriKind.Absolute, out var uri) || !InputFetcher.IsFetchable(uri))
            {
                return (null, ApiProblems.Invalid("Some fields are not valid.",
                    new Dictionary<string, string[]> { ["webhook.url"] = ["Must be an absolute http or https URL of at most 2048 characters."] }));
            }

            url = uri.AbsoluteUri;
            if (await webhookUrls.RefusalAsync(new WebhookSubscription(url, [WebhookEvents.Completed]), cancellationToken).ConfigureAwait(false) is { } refused)
            {
                return (null, refused);
            }
        }

        string? metadata = null;
        if (fields.Metadata is { ValueKind: not JsonValueKind.Null } m)
        {
            metadata = m.GetRawText();
            if (m.ValueKind != JsonValueKind.Object || SubmitText.FirstInvalid(m, "metadata") is not null)
            {
                return (null, ApiProblems.Invalid("Some fields are not valid.", new Dictionary<string, string[]> { ["metadata"] = ["Must be an object of valid text."] }));
            }

            if (Encoding.UTF8.GetByteCount(metadata) > limits.Value.MaxMetadataBytes)
            {
                return (null, TooLarge($"metadata is larger than {limits.Value.MaxMetadataBytes:N0} bytes."));
            }
        }

        return ((url, metadata), null);
    }

    /// <summary>
    /// Reads the JSONL stream line by line: each non-blank line is checked for its framing and copied
    /// into the batch's rows; the batch is committed only when every line passed.
    /// </summary>
    private async Task<(BatchCreated?, ProblemHttpResult?)> ReadLinesAsync(
        HttpRequest request, Stream body, string tenantId, (string? WebhookUrl, string? MetadataJson) fields, string? idempotencyKey, CancellationToken cancellationToken)
    {
        var o = options.Value;
        // A line holds at most a job's JSON body: its input as base64 and its other fields.
        var maxLine = (int)Math.Min(Math.Min(limits.Value.MaxRequestBytes, o.MaxBytes), Array.MaxLength - 1);
        var id = BatchStore.NewId();
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        // custom_id → first line: at most MaxLines entries of at most MaxCustomIdLength characters.
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        long read = 0;
        var number = 0;
        var count = 0;
        var skipping = false;
        // With a key: the file's SHA-256, computed from the bytes as they pass (complete once the stream has ended).
        using var fileHash = idempotencyKey is null ? null : SHA256.Create();
        await using var hashing = fileHash is null ? null : new CryptoStream(body, fileHash, CryptoStreamMode.Read, leaveOpen: true);
        var pipe = PipeReader.Create(hashing ?? body, new StreamPipeReaderOptions(bufferSize: 64 * 1024, leaveOpen: true));
        await using var writer = await store.BeginUploadAsync(id, cancellationToken).ConfigureAwait(false);
        try
        {
            while (true)
            {
                var result = await pipe.ReadAsync(cancellationToken).ConfigureAwait(false);
                var buffer = result.Buffer;
                while (true)
                {
                    var newline = buffer.PositionOf((byte)'\n');
                    if (newline is null)
                    {
                        break;
                    }

                    var line = buffer.Slice(0, newline.Value);
                    read += line.Length + 1;
                    buffer = buffer.Slice(buffer.GetPosition(1, newline.Value));
                    number++;
                    if (skipping)
                    {
                        // The rest of a line already reported as too long.
                        skipping = false;
                        continue;
                    }

                    if (await LineAsync(line).ConfigureAwait(false) is { } stop)
                    {
                        return stop;
                    }
                }

                if (read + buffer.Length > o.MaxBytes)
                {
                    return (null, TooLarge($"The batch is larger than the limit of {o.MaxBytes:N0} bytes."));
                }

                if (result.IsCompleted)
                {
                    if (!buffer.IsEmpty && !skipping)
                    {
                        number++;
                        read += buffer.Length;
                        if (await LineAsync(buffer).ConfigureAwait(false) is { } stop)
                        {
                            return stop;
                        }
                    }

                    break;
                }

                if (buffer.Length > maxLine)
                {
                    // A line this long is an error of its own; its bytes are dropped until its end.
                    Error(number + 1, $"Longer than {maxLine:N0} bytes.");
                    read += buffer.Length;
                    pipe.AdvanceTo(buffer.End);
                    skipping = true;
                    if (errors.Count >= MaxListedErrors)
                    {
                        return (null, Malformed());
                    }

                    continue;
                }

                pipe.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        finally
        {
            await pipe.CompleteAsync().ConfigureAwait(false);
        }

        if (errors.Count > 0)
        {
            return (null, Malformed());
        }

        if (count == 0)
        {
            return (null, ApiProblems.Invalid("The batch has no lines: send one JSON object per line."));
        }

        var now = DateTimeOffset.FromUnixTimeMilliseconds(clock.GetUtcNow().ToUnixTimeMilliseconds());
        var batch = new BatchRecord(id, tenantId, BatchStatuses.Validating, count, fields.WebhookUrl, fields.MetadataJson, now, null, null, null,
            new Dictionary<string, int>(StringComparer.Ordinal) { [BatchLineStatuses.Pending] = count });
        if (idempotencyKey is null)
        {
            await writer.CommitAsync(batch, cancellationToken).ConfigureAwait(false);
            return (new BatchCreated(batch, Replayed: false), null);
        }

        var fileSha256 = fileHash!.Hash ?? throw new InvalidOperationException("The batch file was not read to its end.");
        return await CommitOnceAsync(request, writer, batch, idempotencyKey, Fingerprint(fileSha256, fields.WebhookUrl, fields.MetadataJson), cancellationToken)
            .ConfigureAwait(false);

        // One line: null to go on, or the answer when reading must stop.
        async Task<(BatchCreated?, ProblemHttpResult?)?> LineAsync(ReadOnlySequence<byte> line)
        {
            if (line.Length > maxLine)
            {
                Error(number, $"Longer than {maxLine:N0} bytes.");
                return errors.Count >= MaxListedErrors ? (null, Malformed()) : null;
            }

            var rented = line.IsSingleSegment ? null : ArrayPool<byte>.Shared.Rent((int)line.Length);
            try
            {
                ReadOnlyMemory<byte> bytes = line.IsSingleSegment ? line.First : rented.AsMemory(0, (int)line.Length);
                if (rented is not null)
                {
                    line.CopyTo(rented);
                }

                bytes = TrimEnd(bytes);
                if (bytes.IsEmpty || bytes.Span.IndexOfAnyExcept(" \t\r"u8) < 0)
                {
                    return null; // a blank line is no line of the batch (a trailing newline, an empty last line)
                }

                if (++count > o.MaxLines)
                {
                    return (null, TooLarge($"The batch has more than {o.MaxLines:N0} lines."));
                }

                var (customId, problem) = Frame(bytes.Span);
                if (problem is not null)
                {
                    Error(number, problem);
                }
                else if (seen.TryGetValue(customId!, out var first))
                {
                    Error(number, $"custom_id '{customId}' is already used on line {first}.");
                }
                else
                {
                    seen.Add(customId!, number);
                    if (errors.Count == 0)
                    {
                        await writer.AddLineAsync(number, customId!, bytes, cancellationToken).ConfigureAwait(false);
                    }
                }

                return errors.Count >= MaxListedErrors ? (null, Malformed()) : null;
            }
            finally
            {
                if (rented is not null)
                {
                    ArrayPool<byte>.Shared.Return(rented);
                }
            }
        }

        void Error(int lineNumber, string message) => errors[$"line {lineNumber.ToString(CultureInfo.InvariantCulture)}"] = [message];

        ProblemHttpResult Malformed() => ApiProblems.Invalid(
            errors.Count >= MaxListedErrors
                ? $"The batch file is not valid; the first {MaxListedErrors} errors are listed by line number. No job was created."
                : $"The batch file is not valid: {errors.Count} line(s) listed by line number. No job was created.",
            errors);
    }

    /// <summary>
    /// What an <c>Idempotency-Key</c> remembers of a batch: the SHA-256 of the file's bytes as sent (the
    /// JSONL body, or the <c>file</c> part: the same file matches either way) and the batch-level
    /// fields, the webhook URL (as normalised) and the metadata (as JSON text as sent).
    /// </summary>
    internal static string Fingerprint(ReadOnlySpan<byte> fileSha256, string? webhookUrl, string? metadataJson) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(
            string.Join('\n', "batch", Convert.ToHexString(fileSha256), webhookUrl ?? string.Empty, metadataJson ?? string.Empty))));

    /// <summary>
    /// The file has been read and its lines copied (not yet committed): claims the key, then commits
    /// and points the key at the batch; or rolls the copy back and answers the batch the key already
    /// names, or the mismatch. The key is completed after the commit, so that a concurrent duplicate,
    /// which waits while the key is pending, never finds it naming a batch it cannot read yet.
    /// </summary>
    private async Task<(BatchCreated?, ProblemHttpResult?)> CommitOnceAsync(
        HttpRequest request, BatchUploadWriter writer, BatchRecord batch, string key, string fingerprint, CancellationToken cancellationToken)
    {
        var tenantId = batch.TenantId;
        IdempotencyKeys.Claim claim;
        try
        {
            claim = await idempotency.ClaimAsync(IdempotencyScope.Batches, tenantId, key, fingerprint,
                async id => await store.HeadAsync(id, cancellationToken).ConfigureAwait(false) is { } head && head.TenantId == tenantId,
                cancellationToken).ConfigureAwait(false);
        }
        catch (IdempotencyKeyBusyException ex)
        {
            request.HttpContext.Response.Headers.RetryAfter = "1";
            return (null, ApiProblems.IdempotencyKeyInUse(ex.Message));
        }

        switch (claim)
        {
            case IdempotencyKeys.Claim.Mismatch:
                return (null, ApiProblems.IdempotencyKeyMismatch(
                    "This Idempotency-Key was first used with a different batch (file, webhook or metadata); use a new key for a new batch. No batch was created."));
            case IdempotencyKeys.Claim.Replay replay:
                // The lines copied for this request are rolled back when the writer is disposed.
                var first = await store.GetAsync(replay.JobId, tenantId, cancellationToken).ConfigureAwait(false);
                return first is null
                    ? (null, ApiProblems.Problem(StatusCodes.Status404NotFound, ApiProblems.NotFound, "Batch not found.",
                        $"This Idempotency-Key made batch '{replay.JobId}', which no longer exists."))
                    : (new BatchCreated(first, Replayed: true), null);
        }

        try
        {
            await writer.CommitAsync(batch, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // No batch: the key must not stay pending (should this not reach Redis, the next claim takes it over after a minute).
            await idempotency.ReleaseAsync(IdempotencyScope.Batches, tenantId, key).ConfigureAwait(false);
            throw;
        }

        await idempotency.CompleteAsync(IdempotencyScope.Batches, tenantId, key, fingerprint, batch.Id).ConfigureAwait(false);
        return (new BatchCreated(batch, Replayed: false), null);
    }

    private static ReadOnlyMemory<byte> TrimEnd(ReadOnlyMemory<byte> bytes)
    {
        var span = bytes.Span;
        var end = span.Length;
        while (end > 0 && span[end - 1] is (byte)'\r' or (byte)' ' or (byte)'\t')
        {
            end--;
        }

        return bytes[..end];
    }

    /// <summary>The line is one JSON object with a <c>custom_id</c> string of 1 to <see cref="BatchOptions.MaxCustomIdLength"/> characters: that id, or the problem.</summary>
    internal static (string? CustomId, string? Problem) Frame(ReadOnlySpan<byte> line)
    {
        var reader = new Utf8JsonReader(line, new JsonReaderOptions { MaxDepth = 64 });
        string? customId = null;
        var hasCustomId = false;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return (null, "Not a JSON object.");
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isCustomId = reader.ValueTextEquals("custom_id"u8);
                reader.Read();
                if (isCustomId)
                {
                    hasCustomId = true;
                    customId = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                }
                else
                {
                    reader.Skip();
                }
            }

            // Anything after the object is an error of the reader ("… is invalid after a single JSON value").
            while (reader.Read())
            {
            }
        }
        catch (JsonException ex)
        {
            return (null, $"Not valid JSON: {ex.Message}");
        }
        catch (InvalidOperationException)
        {
            return (null, "Not valid JSON: a string is not valid UTF-8.");
        }

        return customId switch
        {
            _ when !hasCustomId => (null, "custom_id is required."),
            null => (null, "custom_id must be a string."),
            { Length: 0 or > BatchOptions.MaxCustomIdLength } => (null, $"custom_id must be 1 to {BatchOptions.MaxCustomIdLength} characters."),
            _ when !SubmitText.IsValid(customId) || customId.Any(char.IsControl) => (null, "custom_id must be valid text without control characters."),
            _ => (customId, null),
        };
    }

    private static ProblemHttpResult TooLarge(string detail) =>
        ApiProblems.Problem(StatusCodes.Status413PayloadTooLarge, ApiProblems.InputTooLarge, "The batch is too large.", detail);
}
