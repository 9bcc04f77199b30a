using Async.Serving.Hosting;
using Async.Serving.Messaging;
using Async.Serving.Models;
using Async.Serving.Worker.Consumers;
using Async.Serving.Worker.Embedding;
using Async.Serving.Worker.Inference;
using Async.Serving.Worker.Observability;
using Async.Serving.Worker.Ocr;
using Async.Serving.Worker.Priorities;
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
    /// One receive endpoint per served model and priority lane, on the lane's quorum queue (see
    /// <see cref="JobQueues"/>). Jobs running per model: <see cref="ConcurrentJobs"/> (max_batch_size ×
    /// instances × Serving:Worker:PrefetchBatches for image models, enough to fill the next batch while
    /// one runs, and no more, so one worker does not hoard a queue that others share), held by the
    /// model's <see cref="PriorityGate"/>, which its lanes share. Each lane prefetches twice that: its
    /// jobs in slots, and as many waiting at the gate, so that a freed slot finds the highest lane's
    /// jobs already in the process (a slot is freed before its message is acknowledged and the broker
    /// refills the lane). See docs/priorities.md. Prefetch counts messages: under load one carries
    /// several jobs (<see cref="RunInferenceBatchConsumer"/>; docs/worker.md, "Jobs per message"), which
    /// wait at the gate like the jobs of messages of their own.
    /// </summary>
    public static IHostApplicationBuilder AddWorkerBus(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<PriorityGates>();
        builder.Services.AddOptions<MassTransitHostOptions>().Configure<IOptions<WorkerOptions>>((host, worker) =>
        {
            host.WaitUntilStarted = true;
            host.StartTimeout = TimeSpan.FromMinutes(2);
            host.StopTimeout = worker.Value.ShutdownTimeout;
        });
        builder.Services.AddServingBus(
            x =>
            {
                x.AddConsumer<RunInferenceConsumer, RunInferenceConsumerDefinition>();
                x.AddConsumer<RunInferenceBatchConsumer, RunInferenceBatchConsumerDefinition>();
            },
            (context, cfg) =>
            {
                var options = context.GetRequiredService<IOptions<WorkerOptions>>().Value;
                var gates = context.GetRequiredService<PriorityGates>();
                foreach (var entry in ModelHost.Select(context.GetRequiredService<ModelRepository>(), options))
                {
                    var inFlight = ConcurrentJobs(entry, options);
                    gates.Add(entry.Id, inFlight);
                    foreach (var (_, lane) in JobQueues.Lanes(entry.QueueName))
                    {
                        cfg.ReceiveEndpoint(lane, e =>
                        {
                            e.PrefetchCount = LanePrefetch(inFlight);
                            e.ConcurrentMessageLimit = LanePrefetch(inFlight);
                            e.ConfigureConsumeTopology = false;
                            JobQueues.ConfigureReceiveEndpoint(e);
                            e.ConfigureConsumer<RunInferenceConsumer>(context);
                            e.ConfigureConsumer<RunInferenceBatchConsumer>(context);
                        });
                    }
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

    /// <summary>Messages one lane of a model prefetches: its jobs in slots, and as many waiting at the gate.</summary>
    internal static int LanePrefetch(int concurrentJobs) => 2 * concurrentJobs;
}
