using System.Globalization;
using Microsoft.AspNetCore.Diagnostics;
using Npgsql;
using StackExchange.Redis;

namespace Async.Serving.Api.Errors;

/// <summary>
/// Turns the exceptions that mean "a store is down" or "the request itself was bad" into problems,
/// for every endpoint: Redis or PostgreSQL unreachable or timing out is <b>503</b>
/// <c>store_unavailable</c> with <c>Retry-After</c>, never a 500; a request Kestrel refused while the
/// app read it (<see cref="BadHttpRequestException"/>: a body over the limit, a broken chunked body,
/// a body that stopped arriving) gets that status with the matching code.
/// </summary>
internal sealed partial class OutageExceptionHandler(IProblemDetailsService problems, ILogger<OutageExceptionHandler> logger) : IExceptionHandler
{
    public const int RetryAfterSeconds = 5;

    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        var (status, code, title, detail) = Classify(exception) ?? default;
        if (status == 0)
        {
            return false;
        }

        if (status == StatusCodes.Status503ServiceUnavailable)
        {
            LogStoreUnavailable(logger, httpContext.Request.Method, httpContext.Request.Path, exception.GetType().Name, exception.Message);
            httpContext.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        }

        httpContext.Response.StatusCode = status;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails =
            {
                Status = status,
                Title = title,
                Detail = detail,
                Type = ApiProblems.TypeUri(code),
                Extensions = { ["code"] = code },
            },
        }).ConfigureAwait(false);
    }

    /// <summary>The answer for <paramref name="exception"/> (or an exception inside it), or null for a real 500.</summary>
    internal static (int Status, string Code, string Title, string Detail)? Classify(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case RedisConnectionException or RedisTimeoutException:
                    return (StatusCodes.Status503ServiceUnavailable, ApiProblems.StoreUnavailable, "The job store is unavailable.",
                        "Redis, which holds jobs, cannot be reached right now; nothing was changed. Retry later.");
                case NpgsqlException npgsql when npgsql.IsTransient || npgsql is not PostgresException:
                    return (StatusCodes.Status503ServiceUnavailable, ApiProblems.StoreUnavailable, "The database is unavailable.",
                        "PostgreSQL cannot be reached right now; nothing was changed. Retry later.");
                case BadHttpRequestException bad:
                    return bad.StatusCode switch
                    {
                        StatusCodes.Status413PayloadTooLarge => (bad.StatusCode, ApiProblems.InputTooLarge, "The request body is too large.", bad.Message),
                        StatusCodes.Status408RequestTimeout => (bad.StatusCode, ApiProblems.RequestTimeout, "The request body arrived too slowly.", bad.Message),
                        StatusCodes.Status431RequestHeaderFieldsTooLarge => (bad.StatusCode, ApiProblems.RequestTooLarge, "The request headers are too large.", bad.Message),
                        _ => (bad.StatusCode, ApiProblems.InputInvalid, "The request is not valid.", bad.Message),
                    };
            }
        }

        return null;
    }

    [LoggerMessage(EventId = 450, Level = LogLevel.Warning, Message = "{Method} {Path}: a store is unavailable, answered 503 ({ExceptionType}: {Reason})")]
    private static partial void LogStoreUnavailable(ILogger logger, string method, string path, string exceptionType, string reason);
}
