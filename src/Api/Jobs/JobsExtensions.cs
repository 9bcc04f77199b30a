using Async.Serving.Api.Security;
using Async.Serving.Messaging;

namespace Async.Serving.Api.Jobs;

public static class JobsExtensions
{
    /// <summary>
    /// Submit and read jobs: limits, the submission reader, the guarded HTTP client that fetches
    /// <c>input.url</c> (needs <see cref="NetworkSecurityExtensions.AddNetworkGuard"/>), and the bus
    /// that carries jobs to the model queues.
    /// </summary>
    public static IHostApplicationBuilder AddJobs(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<JobLimitsOptions>()
            .BindConfiguration(JobLimitsOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddGuardedHttpClient(InputFetcher.HttpClientName);
        builder.Services.AddSingleton<InputFetcher>();
        builder.Services.AddSingleton<SubmissionReader>();
        builder.Services.AddSingleton<JobPublisher>();
        builder.Services.AddSingleton<JobWaiter>();
        builder.Services.AddSingleton<IdempotencyKeys>();
        builder.Services.AddOptionsWithValidateOnStart<QueueOptions>()
            .BindConfiguration(QueueOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<QueueDepthProbe>();
        builder.Services.AddServingBus();
        return builder;
    }
}
