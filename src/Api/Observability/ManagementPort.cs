using System.Globalization;
using Async.Serving.Api.Health;
using Prometheus;

namespace Async.Serving.Api.Observability;

/// <summary>
/// A second Kestrel endpoint, <c>Serving:Management:Host:Port</c>, for operators: <c>/metrics</c>
/// (Prometheus text) is served there and only there; the public port answers 404 for it. A request
/// belongs to the management port by the local port its connection arrived on, never by its Host
/// header, which a client chooses.
/// </summary>
public static class ManagementPort
{
    public static WebApplicationBuilder AddManagementPort(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptionsWithValidateOnStart<ManagementOptions>()
            .BindConfiguration(ManagementOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<QueueMetrics>();
        builder.Services.AddHostedService<QueuedByModelBackfill>();

        var options = builder.Configuration.GetSection(ManagementOptions.Section).Get<ManagementOptions>() ?? new ManagementOptions();
        if (options.Port is > 0 and <= 65535)
        {
            builder.WebHost.UseSetting(WebHostDefaults.ServerUrlsKey,
                ServerUrls(builder.WebHost.GetSetting(WebHostDefaults.ServerUrlsKey), builder.WebHost.GetSetting("http_ports"), options));
        }

        return builder;
    }

    /// <summary>
    /// The public addresses (<c>ASPNETCORE_URLS</c> or <c>--urls</c>; else <c>ASPNETCORE_HTTP_PORTS</c>, as
    /// the container images set it; else Kestrel's default) plus the management one. Kestrel listens
    /// on all of them; listening in code instead would make it ignore the configured addresses.
    /// </summary>
    internal static string ServerUrls(string? urls, string? httpPorts, ManagementOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(urls))
        {
            urls = string.IsNullOrWhiteSpace(httpPorts)
                ? "http://localhost:5000"
                : string.Join(';', httpPorts.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => "http://*:" + p));
        }

        return $"{urls.TrimEnd(';')};http://{options.Host}:{options.Port.ToString(CultureInfo.InvariantCulture)}";
    }

    /// <summary>
    /// The management port's pipeline, ahead of everything else: <c>/metrics</c> (with the queue
    /// gauges and the breakers' read from Redis just before), <c>/healthz</c> and <c>/readyz</c>; 404 for anything else.
    /// </summary>
    public static WebApplication UseManagementPort(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var port = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ManagementOptions>>().Value.Port;
        app.MapWhen(context => port > 0 && context.Connection.LocalPort == port, management =>
        {
            management.Map("/metrics", metrics =>
            {
                metrics.Use(async (context, next) =>
                {
                    await context.RequestServices.GetRequiredService<QueueMetrics>().RefreshAsync(context.RequestAborted).ConfigureAwait(false);
                    if (context.RequestServices.GetService<Webhooks.WebhookBreakers>() is { } breakers)
                    {
                        await breakers.RefreshMetricsAsync(context.RequestAborted).ConfigureAwait(false);
                    }

                    await context.RequestServices.GetRequiredService<Breakers.ModelBreakers>().RefreshMetricsAsync(
                        context.RequestServices.GetRequiredService<Async.Serving.Models.ModelRepository>().All.Select(m => m.Id), context.RequestAborted).ConfigureAwait(false);
                    await next(context).ConfigureAwait(false);
                });
                metrics.UseMetricServer(url: null);
            });
            management.UseHealthChecks("/healthz", HealthExtensions.Live);
            management.UseHealthChecks("/readyz", HealthExtensions.Ready);
            management.Run(context =>
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            });
        });
        return app;
    }
}
