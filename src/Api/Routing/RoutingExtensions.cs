using Async.Serving.Models;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Async.Serving.Api.Routing;

public static class RoutingExtensions
{
    /// <summary>
    /// Weighted routing of model names to versions: options, the Redis store of the tables (with its
    /// change subscription), the router the job intake calls, and the availability it asks, all
    /// versions available unless a circuit breaker registered an <see cref="IModelAvailability"/> first.
    /// </summary>
    public static IHostApplicationBuilder AddModelRouting(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<RoutingOptions>()
            .BindConfiguration(RoutingOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<RoutingStore>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<RoutingStore>());
        builder.Services.TryAddSingleton<IModelAvailability, AllModelsAvailable>();
        builder.Services.AddSingleton<ModelRouter>();
        RoutingPages.Register();
        return builder;
    }
}
