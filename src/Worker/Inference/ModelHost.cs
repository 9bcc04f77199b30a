using Async.Serving.Breakers;
using Async.Serving.Contracts.Outputs;
using Async.Serving.Models;
using Async.Serving.Worker.Observability;
using Microsoft.Extensions.Options;

namespace Async.Serving.Worker.Inference;

/// <summary>
/// Loads and warms every model this worker serves. It is registered before the bus, and the host
/// starts services one after another, so no message is taken before the models are ready.
/// </summary>
internal sealed partial class ModelHost(
    ModelRepository repository,
    IOptions<WorkerOptions> options,
    PipelineRegistry pipelines,
    ModelBreakers breakers,
    IHostApplicationLifetime lifetime,
    ILogger<ModelHost> logger) : IHostedService, IAsyncDisposable
{
    public bool IsReady { get; private set; }

    /// <summary>Every model this worker serves or loaded for one it serves, with the provider it runs on (for heartbeats).</summary>
    public IEnumerable<(ModelEntry Entry, string Provider)> Served => pipelines.All.SelectMany(p => p.Served);

    /// <summary>
    /// The models named by <c>Serving:Worker:Models</c>, or all of them; an unknown name fails
    /// start-up. These are the models whose queues the worker reads.
    /// </summary>
    public static IReadOnlyList<ModelEntry> Select(ModelRepository repository, WorkerOptions options)
    {
        if (options.Models.Length == 0)
        {
            return [.. repository.All];
        }

        return [.. options.Models.Select(m => repository.Resolve(m)
            ?? throw new ModelConfigException($"Serving:Worker:Models names '{m}', which is not in the model repository."))
            .Distinct()];
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var selected = Select(repository, options.Value);
        // Image models first (those served and those a video model needs), then the video models over them.
        var images = selected.SelectMany(e => repository.Dependencies(e).Append(e))
            .Where(e => e.Config.Pipeline != PipelineNames.VideoAnalyze).Distinct().ToList();
        foreach (var entry in images)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Load(entry);
        }

        foreach (var entry in selected.Where(e => e.Config.Pipeline == PipelineNames.VideoAnalyze))
        {
            Load(entry);
        }

        if (!Served.Any())
        {
            throw new ModelConfigException("This worker has no model to serve: the model repository is empty.");
        }

        foreach (var entry in selected)
        {
            WorkerMetrics.Initialise(entry.Config.Pipeline, entry.Id);
        }

        IsReady = true;
        // "ready" once every hosted service has started, the bus included (it waits for its connection).
        lifetime.ApplicationStarted.Register(() => LogReady(logger, string.Join(", ", selected.Select(e => e.Id))));
        return Task.CompletedTask;
    }

    private void Load(ModelEntry entry)
    {
        var pipeline = pipelines.Get(entry.Config.Pipeline)
            ?? throw new ModelConfigException($"{entry.Directory}/config.json: field 'pipeline' is '{entry.Config.Pipeline}', which this worker does not run.");
        var load = pipeline.Load(entry);
        if (!load.OwnWeights)
        {
            if (entry.Config.Video is { } v)
            {
                LogVideo(logger, entry.Id, v.EmbeddingModel, v.OcrModel.Length > 0 ? v.OcrModel : "none");
            }

            return;
        }

        WorkerMetrics.ModelLoad.WithLabels(entry.Id, load.Provider).Set(load.LoadTime.TotalSeconds);
        foreach (var batcher in load.Batchers)
        {
            ObserveBatches(batcher.Name, batcher);
            ReportBatches(entry.Id, batcher);
        }

        LogLoaded(logger, entry.Id, load.Provider, load.LoadTime.TotalMilliseconds, entry.Config.MaxBatchSize, load.WarmUp.TotalMilliseconds);
    }

    private static void ObserveBatches(string modelId, Batching.DynamicBatcher batcher)
    {
        var batchSize = WorkerMetrics.BatchSize.WithLabels(modelId);
        var inference = WorkerMetrics.BatchInference.WithLabels(modelId);
        batcher.BatchExecuted += (size, elapsed) =>
        {
            batchSize.Observe(size);
            inference.Observe(elapsed.TotalSeconds);
        };
    }

    /// <summary>Tells the model version's circuit breaker (shared by every worker) how each batch of <paramref name="batcher"/> went.</summary>
    private void ReportBatches(string modelId, Batching.DynamicBatcher batcher)
    {
        batcher.BatchExecuted += (_, _) => breakers.ReportBatch(modelId, error: null);
        batcher.BatchFailed += ex => breakers.ReportBatch(modelId, $"{ex.GetType().Name}: {ex.Message}");
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        foreach (var pipeline in pipelines.All)
        {
            await pipeline.UnloadAsync().ConfigureAwait(false);
        }
    }

    [LoggerMessage(EventId = 110, Level = LogLevel.Information,
        Message = "Loaded {Model} on {Provider} in {LoadMs:F0} ms; warm-up batch of {BatchSize} took {WarmMs:F0} ms")]
    private static partial void LogLoaded(ILogger logger, string model, string provider, double loadMs, int batchSize, double warmMs);

    [LoggerMessage(EventId = 112, Level = LogLevel.Information, Message = "Video model {Model}: frames through {Embedding}, text through {Ocr}")]
    private static partial void LogVideo(ILogger logger, string model, string embedding, string ocr);

    [LoggerMessage(EventId = 111, Level = LogLevel.Information, Message = "Worker ready: serving {Models}")]
    private static partial void LogReady(ILogger logger, string models);
}
