using Async.Serving.Hosting;
using Async.Serving.Messaging;
using Async.Serving.Models;
using Async.Serving.Worker.Consumers;
using Async.Serving.Worker.Embedding;
using Async.Serving.Worker.Inference;
using Async.Serving.Worker.Observability;
using Async.Serving.Worker.Ocr;
using Async.Serving.Worker.Video;
using MassTransit;
using Microsoft.Extensions.Options;

namespace Async.Serving.Worker.Hosting;

public static class WorkerHostExtensions
{
    /// <summary>Model loading, ONNX Runtime sessions, batchers and pipelines. Registered before the bus, so models warm first.</summary>
    public static IHostApplicationBuilder AddInference(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<WorkerOptions>()
            .BindConfiguration(WorkerOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.PostConfigure<ModelRepositoryOptions>(o => o.RequireWeights = true);
        builder.Services.AddOptions<HostOptions>().Configure<IOptions<WorkerOptions>>((host, worker) => host.ShutdownTimeout = worker.Value.ShutdownTimeout);
        builder.Services.AddSingleton(sp => new OnnxSessionFactory(
            sp.GetRequiredService<IOptions<WorkerOptions>>().Value,
            sp.GetRequiredService<ILogger<OnnxSessionFactory>>()));
        // Registered before the models' hosted service, so /healthz answers while models load.
        builder.Services.AddServingHealthChecks()
            .AddCheck<ModelsHealthCheck>("models", tags: [ServingHealth.ReadyTag]);
        builder.Services.AddHostedService<WorkerHttpServer>();
        builder.Services.AddSingleton<ModelHost>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ModelHost>());
        // One line per pipeline; the registry keeps this order (the heartbeat lists models in it).
        builder.Services.AddSingleton<PipelineRegistry>();
        builder.Services.AddPipeline<ImageEmbedPipeline>();
        builder.Services.AddPipeline<ImageOcrPipeline>();
        builder.Services.AddPipeline<VideoAnalyzePipeline>();
        builder.Services.AddSingleton<VideoWorkspace>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<VideoWorkspace>());
        builder.Services.AddSingleton<JobCancellations>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<JobCancellations>());
        builder.Services.AddSingleton<WorkerHeartbeat>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<WorkerHeartbeat>());
        return builder;
    }

    /// <summary>
    /// One receive endpoint per served model, on the model's own quorum queue (see <see cref="JobQueues"/>). Messages in flight per queue:
    /// max_batch_size × instances × Serving:Worker:PrefetchBatches, enough to fill the next batch while
    /// one runs, and no more, so one worker does not hoard a queue that others share.
    /// </summary>
    public static IHostApplicationBuilder AddWorkerBus(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<MassTransitHostOptions>().Configure<IOptions<WorkerOptions>>((host, worker) =>
        {
            host.WaitUntilStarted = true;
            host.StartTimeout = TimeSpan.FromMinutes(2);
            host.StopTimeout = worker.Value.ShutdownTimeout;
        });
        builder.Services.AddServingBus(
            x => x.AddConsumer<RunInferenceConsumer, RunInferenceConsumerDefinition>(),
            (context, cfg) =>
            {
                var options = context.GetRequiredService<IOptions<WorkerOptions>>().Value;
                foreach (var entry in ModelHost.Select(context.GetRequiredService<ModelRepository>(), options))
                {
                    cfg.ReceiveEndpoint(entry.QueueName, e =>
                    {
                        var inFlight = ConcurrentJobs(entry, options);
                        e.PrefetchCount = inFlight;
                        e.ConcurrentMessageLimit = inFlight;
                        e.ConfigureConsumeTopology = false;
                        JobQueues.ConfigureReceiveEndpoint(e);
                        e.ConfigureConsumer<RunInferenceConsumer>(context);
                    });
                }
            });
        return builder;
    }

    /// <summary>
    /// Image embedding jobs are one batch slot each: enough of them to fill the next batch while one
    /// runs. OCR and video jobs each hold many slots (crops, frames) and decode a whole image or a
    /// stream, so their models say how many run at once.
    /// </summary>
    internal static int ConcurrentJobs(ModelEntry entry, WorkerOptions options) => entry.Config switch
    {
        { Video: { } video } => video.ConcurrentJobs,
        { Ocr: { } ocr } => ocr.ConcurrentJobs,
        var c => c.MaxBatchSize * c.Instances * options.PrefetchBatches,
    };
}
