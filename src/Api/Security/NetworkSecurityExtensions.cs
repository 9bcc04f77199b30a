using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Security;

public static class NetworkSecurityExtensions
{
    /// <summary>The SSRF guard's options (<c>Serving:Security</c>), for every guarded HTTP client.</summary>
    public static IHostApplicationBuilder AddNetworkGuard(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<NetworkSecurityOptions>()
            .BindConfiguration(NetworkSecurityOptions.Section);
        return builder;
    }

    /// <summary>
    /// A named HTTP client for URLs that clients give us: its primary handler is the
    /// <see cref="GuardedHttpHandler"/>, so it connects only to addresses the guard allows and
    /// follows no redirects by itself.
    /// </summary>
    public static IHttpClientBuilder AddGuardedHttpClient(this IServiceCollection services, string name) =>
        services.AddHttpClient(name)
            .ConfigurePrimaryHttpMessageHandler(sp => GuardedHttpHandler.Create(sp.GetRequiredService<IOptions<NetworkSecurityOptions>>().Value));
}
