using Async.Serving.Api.Security;

namespace Async.Serving.Api.Webhooks;

public static class WebhooksExtensions
{
    /// <summary>
    /// Signed webhook deliveries: options, the secrets store (needs the PostgreSQL data source of
    /// <c>AddApiKeyAuth</c>), the SSRF check at submit and the guarded delivery client (needs
    /// <see cref="NetworkSecurityExtensions.AddNetworkGuard"/>), and, unless turned off, the relay that
    /// turns the job store's outbox into deliveries, which run on Hangfire's <c>webhooks</c> queue.
    /// </summary>
    public static IHostApplicationBuilder AddWebhooks(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<WebhookOptions>()
            .BindConfiguration(WebhookOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddOptionsWithValidateOnStart<WebhookBreakerOptions>()
            .BindConfiguration(WebhookBreakerOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<WebhookBreakers>();
        builder.Services.AddSingleton<WebhookStore>();
        builder.Services.AddHostedService<WebhookSchemaMigration>();
        builder.Services.AddSingleton<WebhookUrlCheck>();
        builder.Services.AddGuardedHttpClient(WebhookDelivery.HttpClientName);
        builder.Services.AddTransient<WebhookDelivery>();
        if (builder.Configuration.GetValue($"{WebhookOptions.Section}:{nameof(WebhookOptions.RunRelay)}", true))
        {
            builder.Services.AddHostedService<JobEventRelay>();
        }

        WebhookPages.Register();
        WebhookDelivery.InitialiseMetrics();
        return builder;
    }
}
