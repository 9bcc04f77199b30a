using Async.Serving.Models;

namespace Async.Serving.Api.Routing;

public static class RoutingExtensions
{
    /// <summary>
    /// Weighted routing of model names to versions: options, the Redis store of the tables (with its
    /// change subscription), and the router the job intake calls (it skips versions whose
    /// circuit breaker is open: <see cref="IModelAvailability"/>, registered with the serving defaults).
    /// </summary>
    public static IHostApplicationBuilder AddModelRouting(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<RoutingOptions>()
            .BindConfiguration(RoutingOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<RoutingStore>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<RoutingStore>());
        builder.Services.AddSingleton<ModelRouter>();
        RoutingPages.Register();
        return builder;
    }
}
