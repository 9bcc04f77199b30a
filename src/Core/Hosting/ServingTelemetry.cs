using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Async.Serving.Hosting;

/// <summary>
/// OpenTelemetry for the API and the worker: traces (ASP.NET Core, HttpClient, MassTransit, Redis,
/// the project's own <see cref="Source"/>, and what a process adds) and metrics (ASP.NET Core,
/// HttpClient, runtime, MassTransit), configured by the standard <c>OTEL_*</c> variables. Traces and
/// metrics go out over OTLP only when an endpoint is set (<c>OTEL_EXPORTER_OTLP_ENDPOINT</c>, or the
/// signal's own <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c> / <c>…_METRICS_ENDPOINT</c>); without one
/// nothing is exported and nothing connects, but spans still exist, so a job's trace id and the trace
/// id in every log line are real. <c>OTEL_SDK_DISABLED=true</c> turns all of it off.
/// See docs/observability.md for the spans of a job's trace.
/// </summary>
public static class ServingTelemetry
{
    /// <summary>The project's spans: submit, batch, inference, result write, event relay, webhook attempt.</summary>
    public const string SourceName = "Async.Serving";

    /// <summary>MassTransit's activity source and meter.</summary>
    public const string MassTransitName = "MassTransit";

    public static readonly ActivitySource Source = new(SourceName);

    public const string JobIdTag = "serving.job.id";
    public const string PipelineTag = "serving.pipeline";
    public const string ModelTag = "serving.model";
    public const string BatchSizeTag = "serving.batch.size";
    public const string EventTypeTag = "serving.event.type";
    public const string WebhookIdTag = "serving.webhook.id";
    public const string WebhookAttemptTag = "serving.webhook.attempt";
    public const string OutcomeTag = "serving.outcome";

    /// <summary>
    /// Registers OpenTelemetry for this process. <c>OTEL_SERVICE_NAME</c> names it, else
    /// <paramref name="defaultServiceName"/>. The spans of the job's path (requests, the project's
    /// own, MassTransit, HttpClient) are always made, so trace ids and propagation hold with or
    /// without export; the spans of each Redis command, and what <paramref name="databases"/> adds
    /// (the API's Npgsql), only when traces are exported.
    /// </summary>
    public static IHostApplicationBuilder AddServingTelemetry(
        this IHostApplicationBuilder builder, string defaultServiceName, Action<TracerProviderBuilder>? databases = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var config = builder.Configuration;
        var serviceName = config["OTEL_SERVICE_NAME"] is { Length: > 0 } name ? name : defaultServiceName;
        var tracesEndpoint = Exporting(config, "TRACES");
        var metricsEndpoint = Exporting(config, "METRICS");

        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(serviceName, serviceInstanceId: Environment.MachineName + ":" + Environment.ProcessId))
            .WithTracing(t =>
            {
                t.AddSource(SourceName, MassTransitName)
                    .AddAspNetCoreInstrumentation(o => o.Filter = Traced)
                    .AddHttpClientInstrumentation();
                if (string.IsNullOrEmpty(config["OTEL_TRACES_SAMPLER"]))
                {
                    t.SetSampler(new ParentBasedSampler(new NoBackgroundClientsSampler()));
                }

                if (tracesEndpoint)
                {
                    // A span per Redis command and per SQL statement is the costly part (the Redis
                    // instrumentation profiles every command of the multiplexer): only when exported.
                    t.AddRedisInstrumentation(o => o.SetVerboseDatabaseStatements = false);
                    databases?.Invoke(t);
                    t.AddOtlpExporter();
                }
            })
            .WithMetrics(m =>
            {
                m.AddAspNetCoreInstrumentation()
                    .AddHttpClientInstrumentation()
                    .AddRuntimeInstrumentation()
                    .AddMeter(MassTransitName);
                if (metricsEndpoint)
                {
                    m.AddOtlpExporter();
                }
            });
        return builder;
    }

    /// <summary>The W3C <c>traceparent</c> of <paramref name="activity"/>, or null.</summary>
    public static string? TraceParent(Activity? activity) =>
        activity is { IdFormat: ActivityIdFormat.W3C, Id: { } id } ? id : null;

    /// <summary>The trace id (32 hex digits) in a <c>traceparent</c>, or null when it is not one.</summary>
    public static string? TraceIdOf(string? traceParent) =>
        ActivityContext.TryParse(traceParent, null, out var context) ? context.TraceId.ToHexString() : null;

    /// <summary>
    /// Starts a span of <see cref="Source"/> as a child of the stored <paramref name="traceParent"/>
    /// (the job's submit), whatever the current activity is: how the outbox relay and each webhook
    /// attempt, which run far from the request, join the job's trace. Null when nobody listens.
    /// </summary>
    public static Activity? StartFromStored(string name, string? traceParent, ActivityKind kind = ActivityKind.Internal)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        // An unreadable or missing traceparent gives a root span: better a trace of its own than none.
        return ActivityContext.TryParse(traceParent, null, isRemote: true, out var parent)
            ? Source.StartActivity(name, kind, parent)
            : Source.StartActivity(name, kind, parentContext: default);
    }

    /// <summary>Records a failure on <paramref name="activity"/> (status Error and the exception event).</summary>
    public static void Fail(this Activity? activity, Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        activity?.SetStatus(ActivityStatusCode.Error, exception.Message);
        activity?.AddException(exception);
    }

    /// <summary>Whether the signal is exported: its endpoint or the common one is set, and its exporter is not <c>none</c>.</summary>
    private static bool Exporting(IConfiguration config, string signal) =>
        !string.Equals(config[$"OTEL_{signal}_EXPORTER"], "none", StringComparison.OrdinalIgnoreCase)
        && (!string.IsNullOrEmpty(config["OTEL_EXPORTER_OTLP_ENDPOINT"]) || !string.IsNullOrEmpty(config[$"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"]));

    /// <summary>Scrapes and probes are no part of anyone's trace.</summary>
    private static bool Traced(HttpContext context) =>
        !(context.Request.Path.StartsWithSegments("/metrics") || context.Request.Path.StartsWithSegments("/healthz")
          || context.Request.Path.StartsWithSegments("/readyz"));

    /// <summary>
    /// The root sampler: a client span with no parent is a background poll (Hangfire's queue, the
    /// ledger writer, the outbox relay reading Redis), thousands an hour and part of no job: dropped.
    /// Everything else is kept. Set <c>OTEL_TRACES_SAMPLER</c> to choose another sampler.
    /// </summary>
    private sealed class NoBackgroundClientsSampler : Sampler
    {
        private static readonly SamplingResult Keep = new(SamplingDecision.RecordAndSample);
        private static readonly SamplingResult Drop = new(SamplingDecision.Drop);

        public override SamplingResult ShouldSample(in SamplingParameters samplingParameters) =>
            samplingParameters.Kind == ActivityKind.Client ? Drop : Keep;
    }
}
