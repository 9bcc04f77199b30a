using Async.Serving.Api.Security;

namespace Async.Serving.Api.Webhooks;

public static class WebhooksExtensions
{
    /// <summary>
    /// Signed webhook deliveries: options, the secrets store (needs the PostgreSQL data source of
    /// <c>AddApiKeyAuth</c>), the SSRF check at submit and the guarded delivery client (needs
    /// <see cref="NetworkSecurityExtensions.AddNetworkGuard"/>). The event consumer is registered
    /// with the bus in <c>AddJobs</c>, and the deliveries run on Hangfire's <c>webhooks</c> queue.
    /// </summary>
    public static IHostApplicationBuilder AddWebhooks(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<WebhookOptions>()
            .BindConfiguration(WebhookOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<WebhookStore>();
        builder.Services.AddHostedService<WebhookSchemaMigration>();
        builder.Services.AddSingleton<WebhookUrlCheck>();
        builder.Services.AddGuardedHttpClient(WebhookDelivery.HttpClientName);
        builder.Services.AddTransient<WebhookDelivery>();
        return builder;
    }
}
