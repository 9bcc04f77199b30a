using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace Async.Serving.Hosting;

/// <summary>
/// The health checks the API and the worker share: checks tagged <see cref="ReadyTag"/> decide
/// readiness (MassTransit adds its bus check with that tag), and both write the same JSON report.
/// </summary>
public static class ServingHealth
{
    public const string ReadyTag = "ready";

    /// <summary>The health check service with Redis as a readiness check.</summary>
    public static IHealthChecksBuilder AddServingHealthChecks(this IServiceCollection services) =>
        services.AddHealthChecks()
            .AddRedis(sp => sp.GetRequiredService<IConnectionMultiplexer>(), name: "redis", tags: [ReadyTag], timeout: TimeSpan.FromSeconds(3));

    /// <summary>200 when nothing is unhealthy (degraded still serves), else 503.</summary>
    public static int StatusCode(HealthReport report) =>
        report.Status == HealthStatus.Unhealthy ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status200OK;

    /// <summary><c>{"status": …, "checks": {name: {status, description}}}</c>.</summary>
    public static Task WriteReportAsync(HttpContext context, HealthReport report)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(report);
        context.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(context.Response.Body, new
        {
            status = report.Status.ToString().ToLowerInvariant(),
            checks = report.Entries.ToDictionary(
                e => e.Key,
                e => new { status = e.Value.Status.ToString().ToLowerInvariant(), description = e.Value.Description ?? e.Value.Exception?.Message }),
        }, cancellationToken: context.RequestAborted);
    }
}
