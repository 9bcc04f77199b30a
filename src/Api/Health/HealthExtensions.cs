using Async.Serving.Hosting;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;

namespace Async.Serving.Api.Health;

public static class HealthExtensions
{
    /// <summary>Readiness of Redis and PostgreSQL; MassTransit adds the bus's own check with the same tag.</summary>
    public static IHostApplicationBuilder AddServingHealthChecks(this IHostApplicationBuilder builder)
    {
        var postgres = builder.Configuration.GetConnectionString("Postgres")
            ?? throw new InvalidOperationException("ConnectionStrings:Postgres is not set.");
        builder.Services.AddServingHealthChecks()
            .AddNpgSql(postgres, name: "postgres", tags: [ServingHealth.ReadyTag], timeout: TimeSpan.FromSeconds(3));
        return builder;
    }

    /// <summary><c>/healthz</c>: the process answers.</summary>
    internal static readonly HealthCheckOptions Live = new() { Predicate = _ => false };

    /// <summary><c>/readyz</c>: RabbitMQ, Redis and PostgreSQL answer too.</summary>
    internal static readonly HealthCheckOptions Ready = new()
    {
        Predicate = check => check.Tags.Contains(ServingHealth.ReadyTag),
        ResponseWriter = ServingHealth.WriteReportAsync,
    };

    /// <summary><c>/healthz</c> and <c>/readyz</c> on the public port (the management port serves them too).</summary>
    public static void MapServingHealth(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/healthz", Live);
        app.MapHealthChecks("/readyz", Ready);
    }
}
