using Async.Serving.Blobs;
using Async.Serving.Breakers;
using Async.Serving.Jobs;
using Async.Serving.Messaging;
using Async.Serving.Models;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Hosting;

public static class ServingDefaults
{
    /// <summary>What the API and the worker share: the log format (<see cref="ServingLogging"/>), the metrics (<see cref="ServingMetrics"/>), options, Redis, the blob store, the job store, the model repository and the model breakers.</summary>
    /// <param name="builder">The host.</param>
    /// <param name="configureRedis">Changes to the Redis connection's options for this process (the API fails fast).</param>
    public static IHostApplicationBuilder AddServingDefaults(this IHostApplicationBuilder builder, Action<ConfigurationOptions>? configureRedis = null)
    {
        builder.AddServingLogging();
        ServingMetrics.SuppressLibraryBridges();
        ServingMetrics.AddRuntimeMetrics();
        builder.Services.AddOptionsWithValidateOnStart<JobStoreOptions>()
            .BindConfiguration(JobStoreOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddOptionsWithValidateOnStart<RabbitMqOptions>()
            .BindConfiguration(RabbitMqOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddOptionsWithValidateOnStart<ModelRepositoryOptions>()
            .BindConfiguration(ModelRepositoryOptions.Section)
            .ValidateDataAnnotations();

        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<IConnectionMultiplexer>(_ =>
        {
            var connection = builder.Configuration.GetConnectionString("Redis")
                ?? throw new InvalidOperationException("ConnectionStrings:Redis is not set.");
            var options = ConfigurationOptions.Parse(connection);
            options.AbortOnConnectFail = false;
            // Replies are read on the .NET thread pool, not on the library's own socket threads: each
            // reply then completes its awaiter where it was read, without waking a second thread
            // (a quarter to a third less CPU per job in the API and the worker; docs/benchmarks.md).
            options.SocketManager = SocketManager.ThreadPool;
            configureRedis?.Invoke(options);
            return ConnectionMultiplexer.Connect(options);
        });
        builder.AddBlobStore();
        builder.Services.AddSingleton<RedisJobStore>();
        builder.Services.AddSingleton<WorkerRegistry>();
        builder.Services.AddOptionsWithValidateOnStart<ModelBreakerOptions>()
            .BindConfiguration(ModelBreakerOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<ModelBreakers>();
        builder.Services.AddSingleton<IModelAvailability>(sp => sp.GetRequiredService<ModelBreakers>());
        builder.Services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<ModelRepositoryOptions>>().Value;
            var env = sp.GetRequiredService<IHostEnvironment>();
            return ModelRepository.Load(Path.GetFullPath(options.Path, env.ContentRootPath), options.RequireWeights);
        });
        return builder;
    }
}
