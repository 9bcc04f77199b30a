namespace Async.Serving.Api.Cache;

public static class CacheExtensions
{
    /// <summary>The result cache: options (validated at start), model fingerprints, the ticket maker and the follower releaser.</summary>
    public static IHostApplicationBuilder AddResultCache(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<CacheOptions>()
            .BindConfiguration(CacheOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<ModelFingerprints>();
        builder.Services.AddSingleton<ResultCache>();
        builder.Services.AddHostedService<FollowerReleaser>();
        return builder;
    }
}
