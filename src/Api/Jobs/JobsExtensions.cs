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
        // Multipart files up to the image limit stay in memory (they go to Redis next anyway); the
        // framework's default spills every part over 64 KiB, most photos, to a temporary file first.
        // Videos above it pass through a temporary file.
        builder.Services.AddOptions<Microsoft.AspNetCore.Http.Features.FormOptions>()
            .Configure<Microsoft.Extensions.Options.IOptions<JobLimitsOptions>>((form, limits) =>
            {
                form.MemoryBufferThreshold = (int)Math.Min(limits.Value.MaxImageBytes + (64 * 1024), int.MaxValue);
                form.MultipartBodyLengthLimit = limits.Value.MaxRequestBytes;
            });
        builder.Services.AddGuardedHttpClient(InputFetcher.HttpClientName);
        builder.Services.AddSingleton<InputFetcher>();
        builder.Services.AddSingleton<SubmissionReader>();
        builder.Services.AddSingleton<JobQueueDeclarer>();
        builder.Services.AddSingleton<JobPublisher>();
        builder.Services.AddSingleton<JobIntake>();
        builder.Services.AddSingleton<JobWaiter>();
        builder.Services.AddSingleton<IdempotencyKeys>();
        builder.Services.AddOptionsWithValidateOnStart<QueueOptions>()
            .BindConfiguration(QueueOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<QueueDepthProbe>();
        // The API only sends on the bus: job events reach webhooks through the job store's outbox.
        builder.Services.AddServingBus();
        return builder;
    }
}
