using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Async.Serving.Hosting;

/// <summary>
/// The console log's format, <c>Serving:Logging:Format</c>: <c>plain</c> (the default, .NET's simple
/// console format) or <c>json</c>, one JSON object per line with the scopes (job id, tenant, model,
/// trace id) as properties and an exception's stack trace inside its line.
/// </summary>
public static class ServingLogging
{
    public const string FormatKey = "Serving:Logging:Format";
    public const string Plain = "plain";
    public const string Json = "json";

    private static readonly Func<ILogger, string, string, string, IDisposable?> JobScope =
        LoggerMessage.DefineScope<string, string, string>("Job {JobId} of tenant {TenantId} on {Model}");

    private static readonly Func<ILogger, string, string, string, int, IDisposable?> WebhookScope =
        LoggerMessage.DefineScope<string, string, string, int>("Webhook {WebhookId} of job {JobId}, tenant {TenantId}, attempt {Attempt}");

    /// <summary>Reads <see cref="FormatKey"/> and sets the console log's format; an unknown value stops the process at start.</summary>
    public static IHostApplicationBuilder AddServingLogging(this IHostApplicationBuilder builder)
    {
        var format = builder.Configuration[FormatKey] is { Length: > 0 } value ? value.Trim().ToLowerInvariant() : Plain;
        switch (format)
        {
            case Plain:
                break;
            case Json:
                builder.Logging.AddJsonConsole(o =>
                {
                    o.IncludeScopes = true;
                    o.UseUtcTimestamp = true;
                    o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
                    o.JsonWriterOptions = new JsonWriterOptions { Indented = false };
                });
                break;
            default:
                throw new InvalidOperationException($"{FormatKey} must be '{Plain}' or '{Json}', not '{builder.Configuration[FormatKey]}'.");
        }

        return builder;
    }

    /// <summary>
    /// A scope naming the job every line logged inside it is about. The trace id needs no scope of its
    /// own: the host adds the current activity's TraceId and SpanId to every line's scopes.
    /// </summary>
    public static IDisposable? BeginJobScope(this ILogger logger, string jobId, string tenantId, string model) =>
        JobScope(logger, jobId, tenantId, model);

    /// <summary>A scope naming the webhook attempt, its job and tenant.</summary>
    public static IDisposable? BeginWebhookScope(this ILogger logger, string webhookId, string jobId, string tenantId, int attempt) =>
        WebhookScope(logger, webhookId, jobId, tenantId, attempt);
}
