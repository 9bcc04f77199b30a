using System.Net;
using Async.Serving.Client;

namespace Async.Serving.Cli.Output;

/// <summary>Turns what went wrong into a message for people, a JSON object for scripts, and an exit code.</summary>
public static class ErrorReport
{
    public sealed record ErrorBody(string Code, int? Status, string Message, string? Detail, IReadOnlyDictionary<string, string[]>? Errors);

    public static ErrorBody Describe(Exception exception) => exception switch
    {
        CliUsageException usage => new ErrorBody("usage", null, usage.Message, null, null),
        ServingApiException api => new ErrorBody(api.Code, api.Status, api.Title ?? api.Message, api.Detail, api.Errors),
        HttpRequestException http => new ErrorBody("transport", http.StatusCode is { } s ? (int)s : null,
            $"The API could not be reached: {http.Message}", null, null),
        TimeoutException or TaskCanceledException => new ErrorBody("timeout", null, "The API did not answer in time.", exception.Message, null),
        _ => new ErrorBody("error", null, exception.Message, null, null),
    };

    public static int ExitCode(Exception exception) => exception is CliUsageException ? ExitCodes.Usage : ExitCodes.ApiError;

    /// <summary>The lines people read: the problem code first, then what the API said and what to do.</summary>
    public static string Format(ErrorBody error)
    {
        ArgumentNullException.ThrowIfNull(error);
        var status = error.Status is { } s ? $" ({s})" : string.Empty;
        var lines = new List<string> { error.Code == "usage" ? $"error: {error.Message}" : $"error: {error.Code}{status}: {error.Message}" };
        if (!string.IsNullOrWhiteSpace(error.Detail) && error.Detail != error.Message)
        {
            lines.Add("  " + error.Detail);
        }

        foreach (var (field, messages) in error.Errors ?? new Dictionary<string, string[]>())
        {
            lines.Add($"  {field}: {string.Join(" ", messages)}");
        }

        if (Hint(error) is { } hint)
        {
            lines.Add("  hint: " + hint);
        }

        return string.Join(Environment.NewLine, lines);
    }

    private static string? Hint(ErrorBody error) => error.Code switch
    {
        "unauthorized" => "check --api-key, SERVING_API_KEY or .serving/env.",
        "forbidden" => "this needs a key with the admin scope (serving keys create --admin, with an admin key).",
        "unknown_pipeline" or "unknown_model" => "serving models lists what the API serves.",
        "transport" => "check --url, SERVING_URL or .serving/env, and that the API is up (scripts/up.sh).",
        _ when error.Status == (int)HttpStatusCode.ServiceUnavailable => "the service is degraded; retry later.",
        _ => null,
    };
}
