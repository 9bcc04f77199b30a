using System.Globalization;
using System.Text.Json;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Webhooks;
using Async.Serving.Blobs;
using Async.Serving.Images;
using Async.Serving.Models;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Jobs;

/// <summary>
/// A submit that passed every check at the door. <see cref="Model"/> is what <see cref="RequestedModel"/>
/// (the client's <c>model</c>, null when it sent none) resolves to, the newest version for a bare
/// name, until the intake routes it (<see cref="Routing.ModelRouter"/>).
/// </summary>
public sealed record Submission(
    string Pipeline, ModelEntry Model, StagedInput Input, string ContentType, string? ParamsJson,
    int TtlSeconds, int TimeoutSeconds, string? MetadataJson, WebhookSubscription? Webhook = null,
    string? RequestedModel = null, string? RoutingKey = null, string? Priority = null)
{
    /// <summary>False when the submit opted out of the result cache (<c>"cache": false</c>).</summary>
    public bool Cache { get; init; } = true;

    /// <summary>The duration a video's header declares (null when it declares none, and for images).</summary>
    public double? VideoSeconds { get; init; }
}

/// <summary>
/// Reads <c>POST /v1/jobs</c> as JSON (<c>input.base64</c> or <c>input.url</c>, fetched here) or
/// multipart (<c>file</c> plus an optional <c>request</c> part) and checks it: sizes, media type,
/// pipeline, model, priority, ttl, timeout, metadata, and the pixels the image header declares.
/// The input is staged as it is read (<see cref="InputStager"/>): a multipart file and a fetched URL
/// stream into the blob store when they are large, never whole in memory; a refused submit's staged
/// input is deleted here.
/// </summary>
internal sealed class SubmissionReader(
    ModelRepository models, InputFetcher fetcher, InputStager stager, IBlobStore blobs, IOptions<JobLimitsOptions> limits,
    IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, IOptions<Microsoft.AspNetCore.Http.Features.FormOptions> form)
{
    private static IReadOnlyList<string> Pipelines => Contracts.Outputs.PipelineNames.All;

    /// <summary>RFC 2046: a boundary is 1 to 70 characters.</summary>
    private const int MaxBoundaryLength = 70;

    private readonly JsonSerializerOptions _jsonBodyOptions = JsonSubmitBody.WithInputConverter(json.Value.SerializerOptions);

    /// <summary>The options a JSON submit is parsed with before <see cref="ReadAsync(SubmitRequest, ReadOnlyMemory{byte}, CancellationToken)"/>: <c>input.base64</c> stays in the source.</summary>
    public JsonSerializerOptions JsonOptions => _jsonBodyOptions;

    public async Task<(Submission? Submission, ProblemHttpResult? Problem)> ReadAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var max = limits.Value.MaxRequestBytes;
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
            return request.HasFormContentType
                ? await ReadMultipartAsync(request, cancellationToken).ConfigureAwait(false)
                : request.HasJsonContentType()
                    ? await ReadJsonAsync(request, cancellationToken).ConfigureAwait(false)
                    : (null, ApiProblems.Problem(StatusCodes.Status415UnsupportedMediaType, ApiProblems.UnsupportedMediaType,
                        "Unsupported request type.", "Send application/json with input.base64 or input.url, or multipart/form-data with a 'file' part."));
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, TooLarge($"The request body is larger than the limit of {max:N0} bytes."));
        }
        catch (BadHttpRequestException ex)
        {
            // The server refused the body while it was read (it stopped short of its Content-Length, bad chunking).
            return (null, ApiProblems.Invalid($"The request body could not be read: {ex.Message}"));
        }
        catch (InvalidDataException ex) when (IsMultipartLimit(ex))
        {
            // Multipart limits (body, part, header or value length) surface as InvalidDataException ("… limit … exceeded").
            return (null, TooLarge(ex.Message));
        }
        catch (InvalidDataException ex)
        {
            return (null, ApiProblems.Invalid($"The multipart body is not valid: {ex.Message}"));
        }
        catch (IOException ex) when (!cancellationToken.IsCancellationRequested)
        {
            // The multipart reader's "Unexpected end of Stream": the body ended before its closing boundary.
            return (null, ApiProblems.Invalid($"The request body ended early: {ex.Message}"));
        }
        catch (JsonException ex)
        {
            // The path names the field (a string that is not valid text fails here too: "$.webhook.url").
            var errors = ex.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal)
                ? new Dictionary<string, string[]> { [path[2..]] = ["Not readable: not valid JSON, the wrong type, or not valid Unicode text."] }
                : null;
            return (null, ApiProblems.Invalid($"The JSON body could not be read: {ex.Message}", errors));
        }
    }

    private static bool IsMultipartLimit(InvalidDataException ex) =>
        ex.Message.Contains("limit", StringComparison.OrdinalIgnoreCase) && ex.Message.Contains("exceeded", StringComparison.OrdinalIgnoreCase);

    private async Task<(Submission?, ProblemHttpResult?)> ReadJsonAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var max = limits.Value.MaxRequestBytes;
        var (read, cap) = await JsonSubmitBody.ReadAsync(request, max, MaxJsonBodyBytes, cancellationToken).ConfigureAwait(false);
        if (read is not { } bytes)
        {
            return (null, TooLarge(cap < max
                ? $"The JSON body is larger than {cap:N0} bytes, the most a job of this pipeline can need; send large files as multipart."
                : $"The request body is larger than the limit of {max:N0} bytes."));
        }

        var body = JsonSubmitBody.Deserialize(bytes, _jsonBodyOptions);
        return body is null
            ? (null, ApiProblems.Invalid("The body is empty."))
            : await ReadAsync(body, bytes, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Checks one JSON submit already parsed from <paramref name="source"/> with <see cref="JsonOptions"/>
    /// (a whole body, or one line of a batch): <c>input.url</c> is fetched, <c>input.base64</c> decoded
    /// from its place in the source, and every field is checked as for <c>POST /v1/jobs</c>.
    /// </summary>
    public async Task<(Submission? Submission, ProblemHttpResult? Problem)> ReadAsync(SubmitRequest body, ReadOnlyMemory<byte> source, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (body.Input?.Url is { } url)
        {
            return await ReadUrlAsync(body, url, cancellationToken).ConfigureAwait(false);
        }

        if (body.Input?.Base64Text is not { IsEmpty: false } text)
        {
            return (null, ApiProblems.Invalid("The job has no input.", new Dictionary<string, string[]> { ["input"] = ["Give input.base64 or input.url."] }));
        }

        var maxBytes = MaxInputBytes(body.Pipeline);
        var input = JsonSubmitBody.Decode(text.In(source.Span), maxBytes, out var tooLarge);
        if (tooLarge)
        {
            return (null, TooLarge($"The input is larger than the limit of {maxBytes:N0} bytes for {body.Pipeline}."));
        }

        if (input is null)
        {
            return (null, ApiProblems.Invalid("input.base64 is not valid base64.", new Dictionary<string, string[]> { ["input.base64"] = ["Not valid base64."] }));
        }

        var (checkedFields, problem) = ValidateFields(body, declaredType: null);
        return problem is not null
            ? (null, problem)
            : await ValidateInputAsync(checkedFields!, await stager.StageAsync(input, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Checks every field first, so that nothing is downloaded for a submit that would be refused anyway.</summary>
    private async Task<(Submission?, ProblemHttpResult?)> ReadUrlAsync(SubmitRequest body, string url, CancellationToken cancellationToken)
    {
        if (body.Input!.Base64 is not null || body.Input.Base64Text is not null)
        {
            return (null, ApiProblems.Invalid("Give input.base64 or input.url, not both.", new Dictionary<string, string[]> { ["input"] = ["Give one of base64 and url."] }));
        }

        if (!SubmitText.IsValid(url))
        {
            return (null, ApiProblems.Invalid("Some fields are not valid.", new Dictionary<string, string[]> { ["input.url"] = [SubmitText.Problem] }));
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || !InputFetcher.IsFetchable(uri))
        {
            return (null, ApiProblems.Invalid("input.url must be an absolute http or https URL.",
                new Dictionary<string, string[]> { ["input.url"] = ["Must be an absolute http or https URL."] }));
        }

        var (checkedFields, problem) = ValidateFields(body, declaredType: null);
        if (problem is not null)
        {
            return (null, problem);
        }

        var (input, fetchProblem) = await fetcher.FetchAsync(uri, MaxInputBytes(body.Pipeline), cancellationToken).ConfigureAwait(false);
        // The response's Content-Type is not trusted (servers often say octet-stream or worse): the bytes are sniffed.
        return fetchProblem is not null ? (null, fetchProblem) : await ValidateInputAsync(checkedFields!, input!, cancellationToken).ConfigureAwait(false);
    }

    private async Task<(Submission?, ProblemHttpResult?)> ReadMultipartAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentType is { } type && type.StartsWith("multipart/", StringComparison.OrdinalIgnoreCase)
            && (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(type, out var mediaType)
                || Microsoft.Net.Http.Headers.HeaderUtilities.RemoveQuotes(mediaType.Boundary).Length is 0 or > MaxBoundaryLength))
        {
            return (null, ApiProblems.Invalid($"A multipart/form-data body needs a boundary parameter of 1 to {MaxBoundaryLength} characters in its Content-Type.",
                new Dictionary<string, string[]> { ["Content-Type"] = ["Missing or invalid boundary."] }));
        }

        if (request.ContentType?.StartsWith("multipart/", StringComparison.OrdinalIgnoreCase) != true)
        {
            // An url-encoded form carries no file.
            return (null, ApiProblems.Invalid("The multipart body has no 'file' part.", new Dictionary<string, string[]> { ["file"] = ["Required."] }));
        }

        var boundary = Microsoft.Net.Http.Headers.HeaderUtilities.RemoveQuotes(
            Microsoft.Net.Http.Headers.MediaTypeHeaderValue.Parse(request.ContentType!).Boundary).Value!;
        var formOptions = form.Value;
        var reader = new Microsoft.AspNetCore.WebUtilities.MultipartReader(boundary, request.Body)
        {
            HeadersCountLimit = formOptions.MultipartHeadersCountLimit,
            HeadersLengthLimit = formOptions.MultipartHeadersLengthLimit,
            BodyLengthLimit = formOptions.MultipartBodyLengthLimit,
        };
        StagedInput? file = null;
        string? fileType = null;
        byte[]? requestJson = null;
        var others = new List<string>();
        var otherParts = 0;
        var maxBytes = Math.Max(limits.Value.MaxImageBytes, limits.Value.MaxVideoBytes);
        try
        {
            // Parts are read in order, the file streamed as it arrives: a 'request' part sent first
            // (as clients should) sets the file's limit to its pipeline's before a byte of it is read.
            var sections = 0;
            while (await reader.ReadNextSectionAsync(cancellationToken).ConfigureAwait(false) is { } section)
            {
                if (++sections > formOptions.ValueCountLimit)
                {
                    throw new InvalidDataException($"Form value count limit {formOptions.ValueCountLimit} exceeded.");
                }

                if (!Microsoft.Net.Http.Headers.ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
                    || !disposition.DispositionType.Equals("form-data", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                var name = Microsoft.Net.Http.Headers.HeaderUtilities.RemoveQuotes(disposition.Name).Value;
                // A 'file' part is the file with or without a filename (curl -F 'file=<photo.jpg' and
                // Python requests' (None, bytes) send none): its bytes are sniffed like any other.
                if (name == "file" && file is null)
                {
                    file = await stager.StageAsync(section.Body, maxBytes, cancellationToken).ConfigureAwait(false);
                    if (file is null)
                    {
                        return (null, TooLarge($"The file is larger than the limit of {maxBytes:N0} bytes."));
                    }

                    fileType = section.ContentType;
                }
                else if (name == "request" && requestJson is null)
                {
                    requestJson = await ReadPartAsync(section.Body, formOptions.ValueLengthLimit, cancellationToken).ConfigureAwait(false);
                    if (file is null && JsonSubmitBody.LeadingPipeline(requestJson) is { } pipeline)
                    {
                        maxBytes = MaxInputBytes(pipeline);
                    }
                }
                else if (++otherParts <= MaxPartsNamed)
                {
                    others.Add(PartName(name));
                }
            }

            if (file is null)
            {
                return (null, ApiProblems.Invalid($"The multipart body has no 'file' part{Besides(others, otherParts)}.", new Dictionary<string, string[]> { ["file"] = ["Required."] }));
            }

            if (requestJson is null && otherParts > 0)
            {
                // '-F pipeline=image.embed' or a misspelt 'request': nothing of it would be read.
                return (null, ApiProblems.Invalid(
                    $"The multipart body has no 'request' part{Besides(others, otherParts)}: the job's fields (pipeline, model, params, …) go as JSON in a part named 'request'.",
                    new Dictionary<string, string[]> { ["request"] = ["Required when the body has parts other than 'file'."] }));
            }

            SubmitRequest body = new();
            if (requestJson is { Length: > 0 } && !requestJson.All(b => b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n'))
            {
                // From the bytes: text that is not valid UTF-8 is refused (JsonException), not replaced.
                body = JsonSerializer.Deserialize<SubmitRequest>(requestJson, json.Value.SerializerOptions) ?? body;
            }

            if (body.Input is not null)
            {
                return (null, ApiProblems.Invalid("Give the input either as the 'file' part or in JSON, not both.", new Dictionary<string, string[]> { ["input"] = ["Not allowed with a file part."] }));
            }

            var pipelineMax = MaxInputBytes(body.Pipeline);
            if (file.Length > pipelineMax)
            {
                return (null, TooLarge($"The file is {file.Length:N0} bytes; the limit for {body.Pipeline} is {pipelineMax:N0}."));
            }

            var (checkedFields, problem) = ValidateFields(body, fileType);
            if (problem is not null)
            {
                return (null, problem);
            }

            var staged = file;
            file = null; // from here ValidateInputAsync owns it, and discards it when it refuses
            return await ValidateInputAsync(checkedFields!, staged, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await stager.DiscardAsync(file).ConfigureAwait(false);
        }
    }

    /// <summary>The most names of parts other than 'file' and 'request' an error repeats.</summary>
    private const int MaxPartsNamed = 5;

    /// <summary>A part's name as an error repeats it: quoted, at most 40 characters, anything but printable ASCII as '?'.</summary>
    private static string PartName(string? name)
    {
        var text = string.Concat((name ?? string.Empty).Take(40).Select(c => c is >= ' ' and <= '~' ? c : '?'));
        return $"'{text}'";
    }

    /// <summary>" (its other parts: 'a', 'b')", or nothing when there were none.</summary>
    private static string Besides(List<string> others, int count) =>
        count == 0 ? string.Empty : $" (its other parts: {string.Join(", ", others)}{(count > others.Count ? $" and {count - others.Count} more" : string.Empty)})";

    /// <summary>A small part's bytes, at most <paramref name="maxBytes"/> (FormOptions.ValueLengthLimit).</summary>
    private static async Task<byte[]> ReadPartAsync(Stream body, int maxBytes, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int n;
        while ((n = await body.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + n > maxBytes)
            {
                throw new InvalidDataException($"Form value length limit {maxBytes} exceeded.");
            }

            buffer.Write(chunk, 0, n);
        }

        return buffer.ToArray();
    }

    /// <summary>Everything but the input's bytes; the submission it returns has no input yet.</summary>
    private (Submission?, ProblemHttpResult?) ValidateFields(SubmitRequest body, string? declaredType)
    {
        var l = limits.Value;
        if (InvalidText(body) is { Count: > 0 } textErrors)
        {
            // First: nothing that is not valid text is echoed in a message, stored, or fingerprinted.
            return (null, ApiProblems.Invalid("Some fields are not valid Unicode text.", textErrors));
        }

        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(body.Pipeline))
        {
            errors["pipeline"] = ["Required."];
        }

        if (body.TtlSeconds is { } ttl && (ttl < 1 || ttl > l.MaxTtlSeconds))
        {
            errors["ttl_seconds"] = [$"Must be between 1 and {l.MaxTtlSeconds}."];
        }

        if (body.TimeoutSeconds is { } timeout && (timeout < 1 || timeout > l.MaxTimeoutSeconds))
        {
            errors["timeout_seconds"] = [$"Must be between 1 and {l.MaxTimeoutSeconds}."];
        }

        if (body.Params is { } p && p.ValueKind is not (JsonValueKind.Object or JsonValueKind.Null))
        {
            errors["params"] = ["Must be an object."];
        }

        string? metadata = null;
        if (body.Metadata is { ValueKind: not JsonValueKind.Null } m)
        {
            metadata = m.GetRawText();
            if (m.ValueKind != JsonValueKind.Object)
            {
                errors["metadata"] = ["Must be an object."];
            }
            else if (System.Text.Encoding.UTF8.GetByteCount(metadata) > l.MaxMetadataBytes)
            {
                return (null, TooLarge($"metadata is larger than {l.MaxMetadataBytes:N0} bytes."));
            }
        }

        if (body.RoutingKey is { } routingKey && (routingKey.Length is 0 or > Routing.RoutingTable.MaxRoutingKeyLength || routingKey.Any(char.IsControl)))
        {
            errors["routing_key"] = [$"1 to {Routing.RoutingTable.MaxRoutingKeyLength} characters, no control characters."];
        }

        if (body.Priority is not null && !Contracts.JobPriorities.IsValid(body.Priority))
        {
            errors["priority"] = [$"Must be one of {string.Join(", ", Contracts.JobPriorities.All.Reverse())}; left out, the tenant's default (normal unless configured)."];
        }

        var webhook = ReadWebhook(body.Webhook, errors);
        if (errors.Count > 0)
        {
            return (null, ApiProblems.Invalid("Some fields are not valid.", errors));
        }

        var pipeline = body.Pipeline!;
        if (!Pipelines.Contains(pipeline))
        {
            return (null, ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, ApiProblems.UnknownPipeline, "Unknown pipeline.",
                $"Pipeline '{pipeline}' does not exist; pipelines are {string.Join(", ", Pipelines)}."));
        }

        var model = body.Model is { Length: > 0 } name
            ? models.Resolve(name)
            : models.All.Where(e => e.Config.Pipeline == pipeline).Select(e => e.Name).Order(StringComparer.Ordinal)
                .Select(models.Resolve).FirstOrDefault(e => e?.Config.Pipeline == pipeline);
        if (model is null || model.Config.Pipeline != pipeline)
        {
            return (null, ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, ApiProblems.UnknownModel, "Unknown model.",
                body.Model is null
                    ? $"No model serves pipeline '{pipeline}'."
                    : $"Model '{body.Model}' is not served for pipeline '{pipeline}'. See GET /v1/models."));
        }

        string? paramsJson = body.Params is { ValueKind: JsonValueKind.Object } ps ? ps.GetRawText() : null;
        if (pipeline == "video.analyze")
        {
            var (_, paramErrors) = VideoParams.Parse(paramsJson, model.Config.Video!);
            if (paramErrors.Count > 0)
            {
                return (null, ApiProblems.Invalid("Some parameters are not valid.", paramErrors));
            }

            if (!MediaSniffer.IsAcceptableVideoContentType(declaredType))
            {
                return (null, ApiProblems.Problem(StatusCodes.Status415UnsupportedMediaType, ApiProblems.UnsupportedMediaType, "Unsupported media type.",
                    $"The file is declared as '{declaredType}'; video.analyze takes video files (MP4, MOV, WebM, MKV, AVI, MPEG, FLV, Ogg, ASF or animated GIF)."));
            }
        }
        else if (!MediaSniffer.IsAcceptableImageContentType(declaredType))
        {
            return (null, ApiProblems.Problem(StatusCodes.Status415UnsupportedMediaType, ApiProblems.UnsupportedMediaType, "Unsupported media type.",
                $"The file is declared as '{declaredType}'; {pipeline} takes JPEG, PNG, WebP, GIF or BMP images."));
        }

        return (new Submission(
            pipeline, model, StagedInput.None, "",
            paramsJson,
            body.TtlSeconds ?? l.DefaultTtlSeconds,
            body.TimeoutSeconds ?? l.DefaultTimeoutSeconds,
            metadata,
            webhook,
            body.Model is { Length: > 0 } ? body.Model : null,
            body.RoutingKey,
            body.Priority) { Cache = body.Cache is not false }, null);
    }

    /// <summary>Every string of the submit that is not valid text, by field (the first one inside params or metadata).</summary>
    private static Dictionary<string, string[]> InvalidText(SubmitRequest body)
    {
        var errors = new Dictionary<string, string[]>();
        void Check(string field, string? text)
        {
            if (!SubmitText.IsValid(text))
            {
                errors[field] = [SubmitText.Problem];
            }
        }

        Check("pipeline", body.Pipeline);
        Check("model", body.Model);
        Check("routing_key", body.RoutingKey);
        Check("priority", body.Priority);
        Check("input.url", body.Input?.Url);
        Check("webhook.url", body.Webhook?.Url);
        foreach (var e in body.Webhook?.Events ?? [])
        {
            Check("webhook.events", e);
        }

        foreach (var (field, element) in new[] { ("params", body.Params), ("metadata", body.Metadata) })
        {
            if (element is { } value && SubmitText.FirstInvalid(value, field) is { } path)
            {
                errors[path] = [SubmitText.Problem];
            }
        }

        return errors;
    }

    /// <summary>The webhook's form (its address is checked by <see cref="WebhookUrlCheck"/>); errors go to <paramref name="errors"/>.</summary>
    private static WebhookSubscription? ReadWebhook(SubmitWebhook? webhook, Dictionary<string, string[]> errors)
    {
        if (webhook is null)
        {
            return null;
        }

        const int MaxUrlLength = 2048;
        Uri? url = null;
        if (webhook.Url is not { Length: > 0 and <= MaxUrlLength } text || !Uri.TryCreate(text, UriKind.Absolute, out url) || !InputFetcher.IsFetchable(url))
        {
            errors["webhook.url"] = [$"Must be an absolute http or https URL of at most {MaxUrlLength} characters."];
        }

        var events = webhook.Events ?? WebhookEvents.Default;
        if (events.Length == 0 || events.Any(e => e is null || !WebhookEvents.All.Contains(e, StringComparer.Ordinal)))
        {
            errors["webhook.events"] = [$"Each one of {string.Join(", ", WebhookEvents.All)}; at least one."];
            return null;
        }

        return url is null ? null : new WebhookSubscription(url.AbsoluteUri, [.. events.Distinct().Cast<string>()]);
    }

    /// <summary>
    /// The bytes must be an image by their magic, and its header must not declare more than
    /// <c>MaxImagePixels</c>. A header SkiaSharp cannot read is let through: the worker fails that
    /// job <c>input_invalid</c>, as it does for any image that does not decode.
    /// </summary>
    /// <remarks>Checks the input's head (all of an inline input, the first bytes of a staged one); a staged input it refuses is deleted.</remarks>
    private async Task<(Submission?, ProblemHttpResult?)> ValidateInputAsync(Submission checkedFields, StagedInput input, CancellationToken cancellationToken)
    {
        var (submission, problem) = await CheckInputAsync(checkedFields, input, cancellationToken).ConfigureAwait(false);
        if (problem is not null)
        {
            await stager.DiscardAsync(input).ConfigureAwait(false);
        }

        return (submission, problem);
    }

    private async Task<(Submission?, ProblemHttpResult?)> CheckInputAsync(Submission checkedFields, StagedInput input, CancellationToken cancellationToken)
    {
        if (checkedFields.Pipeline == "video.analyze")
        {
            if (input.Length == 0 || MediaSniffer.VideoType(input.Head.Span) is not { } container)
            {
                return (null, ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, ApiProblems.InputInvalid, "The input is not a video.",
                    "The input's bytes are not a video container this service reads (MP4, MOV, WebM, MKV, AVI, MPEG, FLV, Ogg, ASF or animated GIF)"
                    + MediaSniffer.Describe(input.Head.Span) switch
                    {
                        { Kind: SniffedKind.Image } image => $"; they are {image.Name}: submit it to image.embed or image.ocr.",
                        { } other => $"; they are {other.Name}.",
                        null => ".",
                    }));
            }

            // What the header declares; the worker checks every video again with ffprobe.
            var maxSeconds = checkedFields.Model.Config.Video!.MaxDurationSeconds;
            var declared = await DurationAsync(input, cancellationToken).ConfigureAwait(false);
            if (declared is { } seconds && seconds > maxSeconds)
            {
                return (null, TooLarge(string.Create(CultureInfo.InvariantCulture,
                    $"The video declares {seconds:0.#} s; model '{checkedFields.Model.Name}' takes at most {maxSeconds:0.#} s.")));
            }

            return (checkedFields with { Input = input, ContentType = container, VideoSeconds = declared }, null);
        }

        if (input.Length == 0 || MediaSniffer.ImageType(input.Head.Span) is not { } sniffed)
        {
            return (null, ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, ApiProblems.InputInvalid, "The input is not an image.",
                "The input's bytes are not a JPEG, PNG, WebP, GIF or BMP image"
                + MediaSniffer.Describe(input.Head.Span) switch
                {
                    { Kind: SniffedKind.Video } video => $"; they are {video.Name}: submit it to video.analyze.",
                    { Kind: SniffedKind.UnreadImage } image => $"; they are {image.Name}, which this service does not decode: convert it to one of those first.",
                    { } other => $"; they are {other.Name}.",
                    null => ".",
                }));
        }

        // A staged image's header is read from its head (its first InlineThreshold bytes, at least 64 KiB).
        var maxPixels = limits.Value.MaxImagePixels;
        if (ImageHeader.ReadSize(input.Head.Span) is { } size && (long)size.Width * size.Height > maxPixels)
        {
            return (null, TooLarge($"The image declares {size.Width:N0}×{size.Height:N0} pixels; the limit is {maxPixels:N0} pixels."));
        }

        return (checkedFields with { Input = input, ContentType = sniffed }, null);
    }

    /// <summary>The duration the video's header declares: from its bytes, or read from its blob (only the header's boxes).</summary>
    private async Task<double?> DurationAsync(StagedInput input, CancellationToken cancellationToken)
    {
        if (input.Bytes is { } bytes)
        {
            return VideoHeader.ReadDurationSeconds(bytes);
        }

        var stream = await blobs.OpenReadAsync(input.Blob!, cancellationToken).ConfigureAwait(false);
        if (stream is null)
        {
            return null;
        }

        await using (stream.ConfigureAwait(false))
        {
            return await VideoHeader.ReadDurationSecondsAsync(stream, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The checks that depend on the version, for a submission routed to another version
    /// (<paramref name="model"/>) of the model it was checked against: a video model's parameters and
    /// longest video. Null when it passes.
    /// </summary>
    internal static ProblemHttpResult? CheckRouted(Submission submission, ModelEntry model)
    {
        ArgumentNullException.ThrowIfNull(submission);
        ArgumentNullException.ThrowIfNull(model);
        if (model.Config.Video is not { } video)
        {
            return null;
        }

        var (_, paramErrors) = VideoParams.Parse(submission.ParamsJson, video);
        if (paramErrors.Count > 0)
        {
            return ApiProblems.Invalid($"Some parameters are not valid for {model.Id}, the version this submit was routed to.", paramErrors);
        }

        return submission.VideoSeconds is { } seconds && seconds > video.MaxDurationSeconds
            ? TooLarge(string.Create(CultureInfo.InvariantCulture,
                $"The video declares {seconds:0.#} s; {model.Id}, the version this submit was routed to, takes at most {video.MaxDurationSeconds:0.#} s."))
            : null;
    }

    /// <summary>
    /// The largest JSON body a job of <paramref name="pipeline"/> can need: its input as base64, with
    /// 5 % for line breaks, and 1 MiB for the other fields; never more than <c>MaxRequestBytes</c>.
    /// </summary>
    private long MaxJsonBodyBytes(string pipeline) =>
        Math.Min(limits.Value.MaxRequestBytes, (MaxInputBytes(pipeline) + 2) / 3 * 4 * 21 / 20 + (1024 * 1024));

    private long MaxInputBytes(string? pipeline) => pipeline == "video.analyze" ? limits.Value.MaxVideoBytes : limits.Value.MaxImageBytes;

    private static ProblemHttpResult TooLarge(string detail) =>
        ApiProblems.Problem(StatusCodes.Status413PayloadTooLarge, ApiProblems.InputTooLarge, "The input is too large.", detail);
}
