using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Async.Serving.Client;

/// <summary>
/// An answer that is not 2xx. <see cref="Code"/> is the problem's <c>code</c> (<c>not_found</c>,
/// <c>unknown_model</c>, <c>queue_full</c>, …); for an answer that is not a problem document it is
/// derived from the status as the API would (<c>not_found</c> for 404, <c>http_502</c> for others).
/// </summary>
public sealed class ServingApiException : Exception
{
    public ServingApiException()
        : this(0, "unknown", null, null, null, null)
    {
    }

    public ServingApiException(string message)
        : base(message)
    {
        Code = "unknown";
    }

    public ServingApiException(string message, Exception innerException)
        : base(message, innerException)
    {
        Code = "unknown";
    }

    public ServingApiException(int status, string code, string? title, string? detail, IReadOnlyDictionary<string, string[]>? errors, TimeSpan? retryAfter)
        : base(MessageOf(status, code, title, detail, errors))
    {
        Status = status;
        Code = code;
        Title = title;
        Detail = detail;
        Errors = errors;
        RetryAfter = retryAfter;
    }

    /// <summary>The HTTP status.</summary>
    public int Status { get; }

    public string Code { get; }

    public string? Title { get; }

    public string? Detail { get; }

    /// <summary>For <c>input_invalid</c>: the fields and what is wrong with each.</summary>
    public IReadOnlyDictionary<string, string[]>? Errors { get; }

    /// <summary>The answer's <c>Retry-After</c> (429, 503), when it had one.</summary>
    public TimeSpan? RetryAfter { get; }

    private static string MessageOf(int status, string code, string? title, string? detail, IReadOnlyDictionary<string, string[]>? errors)
    {
        var message = $"{status} {code}: {detail ?? title ?? "the API refused the request"}";
        return errors is { Count: > 0 }
            ? message + " (" + string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}")) + ")"
            : message;
    }

    /// <summary>Reads a refused answer: its problem document when it has one, else its status.</summary>
    internal static async Task<ServingApiException> FromResponseAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        var retryAfter = RetryAfterOf(response.Headers.RetryAfter);
        ProblemDocument? problem = null;
        if (response.Content.Headers.ContentType?.MediaType is { } type && type.EndsWith("json", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                problem = await response.Content.ReadFromJsonAsync(ServingClientJsonContext.Default.ProblemDocument, cancellationToken).ConfigureAwait(false);
            }
            catch (JsonException)
            {
                // Not a problem document after all: the status speaks.
            }
        }

        var code = problem?.Code is { Length: > 0 } c ? c : CodeOf(response.StatusCode);
        var title = problem?.Title ?? response.ReasonPhrase;
        return new ServingApiException(status, code, title, problem?.Detail, problem?.Errors, retryAfter);
    }

    private static TimeSpan? RetryAfterOf(RetryConditionHeaderValue? header) =>
        header?.Delta is { } delta ? delta
        : header?.Date is { } date ? (date - DateTimeOffset.UtcNow) is { } left && left > TimeSpan.Zero ? left : TimeSpan.Zero
        : null;

    private static string CodeOf(HttpStatusCode status) => status switch
    {
        HttpStatusCode.BadRequest => "input_invalid",
        HttpStatusCode.Unauthorized => "unauthorized",
        HttpStatusCode.Forbidden => "forbidden",
        HttpStatusCode.NotFound => "not_found",
        HttpStatusCode.Conflict => "conflict",
        HttpStatusCode.RequestEntityTooLarge => "input_too_large",
        HttpStatusCode.UnsupportedMediaType => "unsupported_media_type",
        HttpStatusCode.TooManyRequests => "rate_limited",
        HttpStatusCode.ServiceUnavailable => "service_unavailable",
        _ => $"http_{(int)status}",
    };
}

/// <summary>An RFC 9457 problem document with the API's <c>code</c> and <c>errors</c> extensions.</summary>
internal sealed record ProblemDocument(string? Type, string? Title, int? Status, string? Detail, string? Code, Dictionary<string, string[]>? Errors);
