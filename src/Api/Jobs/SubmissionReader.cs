using System.Globalization;
using System.Text.Json;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Webhooks;
using Async.Serving.Images;
using Async.Serving.Models;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Jobs;

/// <summary>A submit that passed every check at the door.</summary>
public sealed record Submission(
    string Pipeline, ModelEntry Model, byte[] Input, string ContentType, string? ParamsJson,
    int TtlSeconds, int TimeoutSeconds, string? MetadataJson, WebhookSubscription? Webhook = null);

/// <summary>
/// Reads <c>POST /v1/jobs</c> as JSON (<c>input.base64</c> or <c>input.url</c>, fetched here) or
/// multipart (<c>file</c> plus an optional <c>request</c> part) and checks it: sizes, media type,
/// pipeline, model, ttl, timeout, metadata, and the pixels the image header declares.
/// </summary>
internal sealed class SubmissionReader(
    ModelRepository models, InputFetcher fetcher, IOptions<JobLimitsOptions> limits, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json)
{
    private static readonly string[] Pipelines = ["image.embed", "image.ocr", "video.analyze"];

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
        catch (InvalidDataException ex)
        {
            // Multipart limits (part or section length) surface as InvalidDataException.
            return (null, TooLarge(ex.Message));
        }
        catch (JsonException ex)
        {
            return (null, ApiProblems.Invalid($"The JSON body could not be read: {ex.Message}"));
        }
    }

    private async Task<(Submission?, ProblemHttpResult?)> ReadJsonAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var body = await JsonSerializer.DeserializeAsync<SubmitRequest>(request.Body, json.Value.SerializerOptions, cancellationToken).ConfigureAwait(false);
        if (body is null)
        {
            return (null, ApiProblems.Invalid("The body is empty."));
        }

        if (body.Input?.Url is { } url)
        {
            return await ReadUrlAsync(body, url, cancellationToken).ConfigureAwait(false);
        }

        if (string.IsNullOrEmpty(body.Input?.Base64))
        {
            return (null, ApiProblems.Invalid("The job has no input.", new Dictionary<string, string[]> { ["input"] = ["Give input.base64 or input.url."] }));
        }

        var maxBytes = MaxInputBytes(body.Pipeline);
        if ((long)body.Input.Base64.Length * 3 / 4 > maxBytes)
        {
            return (null, TooLarge($"The input is larger than the limit of {maxBytes:N0} bytes for {body.Pipeline}."));
        }

        byte[] input;
        try
        {
            input = Convert.FromBase64String(body.Input.Base64);
        }
        catch (FormatException)
        {
            return (null, ApiProblems.Invalid("input.base64 is not valid base64.", new Dictionary<string, string[]> { ["input.base64"] = ["Not valid base64."] }));
        }

        return Validate(body, input, declaredType: null);
    }

    /// <summary>Checks every field first, so that nothing is downloaded for a submit that would be refused anyway.</summary>
    private async Task<(Submission?, ProblemHttpResult?)> ReadUrlAsync(SubmitRequest body, string url, CancellationToken cancellationToken)
    {
        if (body.Input!.Base64 is not null)
        {
            return (null, ApiProblems.Invalid("Give input.base64 or input.url, not both.", new Dictionary<string, string[]> { ["input"] = ["Give one of base64 and url."] }));
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
        return fetchProblem is not null ? (null, fetchProblem) : ValidateInput(checkedFields!, input!);
    }

    private async Task<(Submission?, ProblemHttpResult?)> ReadMultipartAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var form = await request.ReadFormAsync(cancellationToken).ConfigureAwait(false);
        var file = form.Files.GetFile("file");
        if (file is null)
        {
            return (null, ApiProblems.Invalid("The multipart body has no 'file' part.", new Dictionary<string, string[]> { ["file"] = ["Required."] }));
        }

        SubmitRequest body = new();
        if (form.TryGetValue("request", out var requestPart) && !string.IsNullOrWhiteSpace(requestPart))
        {
            body = JsonSerializer.Deserialize<SubmitRequest>(requestPart.ToString(), json.Value.SerializerOptions) ?? body;
        }
        else if (form.Files.GetFile("request") is { } requestFile)
        {
            await using var stream = requestFile.OpenReadStream();
            body = await JsonSerializer.DeserializeAsync<SubmitRequest>(stream, json.Value.SerializerOptions, cancellationToken).ConfigureAwait(false) ?? body;
        }

        if (body.Input is not null)
        {
            return (null, ApiProblems.Invalid("Give the input either as the 'file' part or in JSON, not both.", new Dictionary<string, string[]> { ["input"] = ["Not allowed with a file part."] }));
        }

        var maxBytes = MaxInputBytes(body.Pipeline);
        if (file.Length > maxBytes)
        {
            return (null, TooLarge($"The file is {file.Length:N0} bytes; the limit for {body.Pipeline} is {maxBytes:N0}."));
        }

        var input = new byte[file.Length];
        await using (var stream = file.OpenReadStream())
        {
            await stream.ReadExactlyAsync(input, cancellationToken).ConfigureAwait(false);
        }

        return Validate(body, input, file.ContentType);
    }

    private (Submission?, ProblemHttpResult?) Validate(SubmitRequest body, byte[] input, string? declaredType)
    {
        var (checkedFields, problem) = ValidateFields(body, declaredType);
        return problem is not null ? (null, problem) : ValidateInput(checkedFields!, input);
    }

    /// <summary>Everything but the input's bytes; the submission it returns has no input yet.</summary>
    private (Submission?, ProblemHttpResult?) ValidateFields(SubmitRequest body, string? declaredType)
    {
        var l = limits.Value;
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
            pipeline, model, [], "",
            paramsJson,
            body.TtlSeconds ?? l.DefaultTtlSeconds,
            body.TimeoutSeconds ?? l.DefaultTimeoutSeconds,
            metadata,
            webhook), null);
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
    private (Submission?, ProblemHttpResult?) ValidateInput(Submission checkedFields, byte[] input)
    {
        if (checkedFields.Pipeline == "video.analyze")
        {
            if (input.Length == 0 || MediaSniffer.VideoType(input) is not { } container)
            {
                return (null, ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, ApiProblems.InputInvalid, "The input is not a video.",
                    "The input's bytes are not a video container this service reads (MP4, MOV, WebM, MKV, AVI, MPEG, FLV, Ogg, ASF or animated GIF)."));
            }

            // What the header declares; the worker checks every video again with ffprobe.
            var maxSeconds = checkedFields.Model.Config.Video!.MaxDurationSeconds;
            if (VideoHeader.ReadDurationSeconds(input) is { } seconds && seconds > maxSeconds)
            {
                return (null, TooLarge(string.Create(CultureInfo.InvariantCulture,
                    $"The video declares {seconds:0.#} s; model '{checkedFields.Model.Name}' takes at most {maxSeconds:0.#} s.")));
            }

            return (checkedFields with { Input = input, ContentType = container }, null);
        }

        if (input.Length == 0 || MediaSniffer.ImageType(input) is not { } sniffed)
        {
            return (null, ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, ApiProblems.InputInvalid, "The input is not an image.",
                "The input's bytes are not a JPEG, PNG, WebP, GIF or BMP image."));
        }

        var maxPixels = limits.Value.MaxImagePixels;
        if (ImageHeader.ReadSize(input) is { } size && (long)size.Width * size.Height > maxPixels)
        {
            return (null, TooLarge($"The image declares {size.Width:N0}×{size.Height:N0} pixels; the limit is {maxPixels:N0} pixels."));
        }

        return (checkedFields with { Input = input, ContentType = sniffed }, null);
    }

    private long MaxInputBytes(string? pipeline) => pipeline == "video.analyze" ? limits.Value.MaxVideoBytes : limits.Value.MaxImageBytes;

    private static ProblemHttpResult TooLarge(string detail) =>
        ApiProblems.Problem(StatusCodes.Status413PayloadTooLarge, ApiProblems.InputTooLarge, "The input is too large.", detail);
}
