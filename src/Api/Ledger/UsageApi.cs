using System.Globalization;
using Async.Serving.Api.Auth;
using Async.Serving.Api.Errors;
using Async.Serving.Api.OpenApi;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Async.Serving.Api.Ledger;

public static class UsageApi
{
    public static readonly TimeSpan DefaultPeriod = TimeSpan.FromDays(30);
    public static readonly TimeSpan MaxPeriod = TimeSpan.FromDays(366);

    public static void MapUsageApi(this IEndpointRouteBuilder app) =>
        app.MapGet("/v1/usage", GetAsync)
            .RequireAuthorization("tenant")
            .WithTags("Usage")
            .WithName("GetUsage")
            .ProducesProblems(StatusCodes.Status400BadRequest)
            .WithSummary("The tenant's jobs and compute milliseconds per pipeline and model version, with failure rate and execution and latency "
                + "percentiles to compare versions, result cache hits, hit rate and saved compute, from the job ledger; jobs created in [from, to); model keeps one model's versions.");

    internal static async Task<Results<Ok<UsageReport>, ProblemHttpResult>> GetAsync(
        HttpContext http, LedgerStore ledger, TimeProvider clock, string? from, string? to, string? model, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        var end = Parse(to, "to", errors) ?? clock.GetUtcNow();
        var start = Parse(from, "from", errors) ?? end - DefaultPeriod;
        if (errors.Count == 0 && start >= end)
        {
            errors["from"] = ["from must be earlier than to."];
        }
        else if (errors.Count == 0 && end - start > MaxPeriod)
        {
            errors["to"] = [$"The period may span at most {MaxPeriod.TotalDays:F0} days."];
        }

        if (errors.Count > 0)
        {
            return ApiProblems.Problem(StatusCodes.Status400BadRequest, ApiProblems.InputInvalid, "Invalid period.",
                "from and to are ISO 8601 instants (for example 2026-01-01T00:00:00Z), from before to, at most 366 days apart.", errors);
        }

        var lines = await ledger.UsageAsync(http.User.TenantId(), start, end, cancellationToken, string.IsNullOrWhiteSpace(model) ? null : model.Trim()).ConfigureAwait(false);
        return TypedResults.Ok(new UsageReport(start.ToUniversalTime(), end.ToUniversalTime(), lines));
    }

    private static DateTimeOffset? Parse(string? value, string name, Dictionary<string, string[]> errors)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var parsed))
        {
            return parsed;
        }

        errors[name] = [$"{name} is not an ISO 8601 instant."];
        return null;
    }
}

/// <summary>Usage in [<see cref="From"/>, <see cref="To"/>): jobs counted by creation time.</summary>
public sealed record UsageReport(DateTimeOffset From, DateTimeOffset To, IReadOnlyList<UsageLine> Data);
