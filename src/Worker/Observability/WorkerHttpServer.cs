using Async.Serving.Hosting;
using Async.Serving.Worker.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Prometheus;

namespace Async.Serving.Worker.Observability;

/// <summary>
/// The worker's HTTP port (Serving:Worker:MetricsHost:MetricsPort, loopback by default; 0 turns it
/// off): <c>/metrics</c> (Prometheus), <c>/healthz</c> (the process answers) and <c>/readyz</c>
/// (models loaded and warm, RabbitMQ bus started, Redis answering; 503 otherwise). It starts
/// before the models load, so a probe sees the worker alive but not ready while they do.
/// </summary>
internal sealed partial class WorkerHttpServer(
    IOptions<WorkerOptions> options, HealthCheckService health, ILogger<WorkerHttpServer> logger) : IHostedService, IAsyncDisposable
{
    private WebApplication? _app;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.MetricsPort <= 0)
        {
            return;
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://{o.MetricsHost}:{o.MetricsPort}");
        builder.Logging.ClearProviders(); // the worker's own log says what matters
        _app = builder.Build();
        _app.MapMetrics("/metrics");
        _app.MapGet("/healthz", () => Results.Json(new { status = "healthy" }));
        _app.MapGet("/readyz", async (HttpContext context) =>
        {
            var report = await health.CheckHealthAsync(c => c.Tags.Contains(ServingHealth.ReadyTag), context.RequestAborted).ConfigureAwait(false);
            context.Response.StatusCode = ServingHealth.StatusCode(report);
            await ServingHealth.WriteReportAsync(context, report).ConfigureAwait(false);
        });
        await _app.StartAsync(cancellationToken).ConfigureAwait(false);
        LogListening(logger, o.MetricsHost, o.MetricsPort);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }

    [LoggerMessage(EventId = 120, Level = LogLevel.Information, Message = "Metrics and health on http://{Host}:{Port} (/metrics, /healthz, /readyz)")]
    private static partial void LogListening(ILogger logger, string host, int port);
}

/// <summary>Ready once every served model is loaded and warmed up.</summary>
internal sealed class ModelsHealthCheck(ModelHost models) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(models.IsReady
            ? HealthCheckResult.Healthy("serving " + string.Join(", ", models.Served.Select(m => m.Entry.Id).Distinct(StringComparer.Ordinal)))
            : HealthCheckResult.Unhealthy("loading and warming models"));
}
