using Microsoft.AspNetCore.Http.HttpResults;

namespace Async.Serving.Api.Errors;

/// <summary>
/// RFC 9457 problem details with the contract's <c>code</c> extension. The <c>type</c> is a stable
/// URI per code, so a client can switch on either.
/// </summary>
public static class ApiProblems
{
    public const string InputInvalid = "input_invalid";
    public const string InputTooLarge = "input_too_large";
    public const string UnsupportedMediaType = "unsupported_media_type";
    public const string UnknownPipeline = "unknown_pipeline";
    public const string UnknownModel = "unknown_model";
    public const string BrokerUnavailable = "broker_unavailable";
    public const string QueueFull = "queue_full";

    /// <summary>The model version is marked unavailable by its circuit breaker (its batches kept failing): 503 with <c>Retry-After</c>.</summary>
    public const string ModelUnavailable = "model_unavailable";
    public const string IdempotencyMismatch = "idempotency_mismatch";
    public const string Conflict = "conflict";
    public const string NotFound = "not_found";
    public const string Unauthorized = "unauthorized";
    public const string RateLimited = "rate_limited";
    public const string Forbidden = "forbidden";

    /// <summary>Redis or PostgreSQL cannot be reached or timed out: 503 with <c>Retry-After</c>.</summary>
    public const string StoreUnavailable = "store_unavailable";

    /// <summary>An API key could not be checked because PostgreSQL cannot be reached: 503 with <c>Retry-After</c>.</summary>
    public const string AuthUnavailable = "auth_unavailable";

    /// <summary>The request line or the headers are over the server's limits (414, 431).</summary>
    public const string RequestTooLarge = "request_too_large";

    public const string RequestTimeout = "request_timeout";

    public const string MethodNotAllowed = "method_not_allowed";

    /// <summary>A 503 the framework wrote without a code of ours.</summary>
    public const string ServiceUnavailable = "service_unavailable";

    /// <summary>An unexpected failure (500).</summary>
    public const string InternalError = "internal_error";

    /// <summary>Every <c>code</c> a problem of this API can carry (the OpenAPI document lists them as an enum).</summary>
    public static IReadOnlyList<string> AllCodes { get; } =
    [
        .. typeof(ApiProblems).GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
            .Where(f => f.IsLiteral && f.FieldType == typeof(string))
            .Select(f => (string)f.GetRawConstantValue()!)
            .Order(StringComparer.Ordinal),
    ];

    public static ProblemHttpResult Problem(int status, string code, string title, string detail, IDictionary<string, string[]>? errors = null)
    {
        var extensions = new Dictionary<string, object?> { ["code"] = code };
        if (errors is not null)
        {
            extensions["errors"] = errors;
        }

        return TypedResults.Problem(
            detail: detail,
            statusCode: status,
            title: title,
            type: TypeUri(code),
            extensions: extensions);
    }

    /// <summary>
    /// Gives problems written by the framework itself (415 from endpoint metadata, 404 for an unknown
    /// route, 500 from the exception handler) the same <c>code</c> extension as ours.
    /// </summary>
    public static void AddCode(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        if (problem.Extensions.ContainsKey("code"))
        {
            return;
        }

        var code = problem.Status switch
        {
            StatusCodes.Status400BadRequest => InputInvalid,
            StatusCodes.Status401Unauthorized => Unauthorized,
            StatusCodes.Status403Forbidden => Forbidden,
            StatusCodes.Status404NotFound => NotFound,
            StatusCodes.Status405MethodNotAllowed => MethodNotAllowed,
            StatusCodes.Status408RequestTimeout => RequestTimeout,
            StatusCodes.Status409Conflict => Conflict,
            StatusCodes.Status413PayloadTooLarge => InputTooLarge,
            StatusCodes.Status414UriTooLong or StatusCodes.Status431RequestHeaderFieldsTooLarge => RequestTooLarge,
            StatusCodes.Status415UnsupportedMediaType => UnsupportedMediaType,
            StatusCodes.Status429TooManyRequests => RateLimited,
            StatusCodes.Status503ServiceUnavailable => ServiceUnavailable,
            _ => InternalError,
        };
        problem.Extensions["code"] = code;
        problem.Detail ??= problem.Title;
    }

    public static string TypeUri(string code) => $"https://async-serving.dev/problems/{code.Replace('_', '-')}";

    public static ProblemHttpResult Invalid(string detail, IDictionary<string, string[]>? errors = null) =>
        Problem(StatusCodes.Status400BadRequest, InputInvalid, "The request is not valid.", detail, errors);

    /// <summary>409: the first request with this <c>Idempotency-Key</c> (a job's or a batch's) is still being processed; answered with <c>Retry-After: 1</c>.</summary>
    public static ProblemHttpResult IdempotencyKeyInUse(string reason) =>
        Problem(StatusCodes.Status409Conflict, Conflict, "Idempotency-Key in use.", $"{reason} Retry later.");

    /// <summary>422: the <c>Idempotency-Key</c> was first used with another request (<paramref name="detail"/> says what differs and what to do).</summary>
    public static ProblemHttpResult IdempotencyKeyMismatch(string detail) =>
        Problem(StatusCodes.Status422UnprocessableEntity, IdempotencyMismatch, "Idempotency-Key reused with another request.", detail);

    public static ProblemHttpResult JobNotFound(string id) =>
        Problem(StatusCodes.Status404NotFound, NotFound, "No such job.", $"There is no job '{id}'.");
}
