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
        // A job submit reads its multipart body itself, part by part (SubmissionReader): the file streams
        // through the InputStager (to the blob store when large), so MemoryBufferThreshold does not apply
        // to it; its header and part limits, and MultipartBodyLengthLimit, do. These settings also serve
        // the other form reads (batch uploads, dashboard forms).
        builder.Services.AddOptions<Microsoft.AspNetCore.Http.Features.FormOptions>()
            .Configure<Microsoft.Extensions.Options.IOptions<JobLimitsOptions>>((form, limits) =>
            {
                form.MemoryBufferThreshold = (int)Math.Min(limits.Value.MaxImageBytes + (64 * 1024), int.MaxValue);
                form.MultipartBodyLengthLimit = limits.Value.MaxRequestBytes;
            });
        builder.Services.AddGuardedHttpClient(InputFetcher.HttpClientName);
        builder.Services.AddSingleton<InputStager>();
        builder.Services.AddSingleton<InputFetcher>();
        builder.Services.AddSingleton<SubmissionReader>();
        builder.Services.AddSingleton<JobQueueDeclarer>();
        builder.Services.AddSingleton<JobSender>();
        builder.Services.AddSingleton<JobPublisher>();
        builder.Services.AddSingleton<JobIntake>();
        builder.Services.AddSingleton<JobWaiter>();
        builder.Services.AddSingleton<IdempotencyKeys>();
        builder.Services.AddOptionsWithValidateOnStart<QueueOptions>()
            .BindConfiguration(QueueOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<QueueDepthProbe>();
        builder.Services.AddOptionsWithValidateOnStart<TenantOptions>()
            .BindConfiguration(TenantOptions.Section);
        builder.Services.AddSingleton<Microsoft.Extensions.Options.IValidateOptions<TenantOptions>, TenantOptionsValidator>();
        // The API only sends on the bus: job events reach webhooks through the job store's outbox.
        builder.Services.AddServingBus();
        return builder;
    }
}
