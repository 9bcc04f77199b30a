using System.Diagnostics;
using Async.Serving.Breakers;
using Async.Serving.Models;
using Async.Serving.Worker.Observability;
using Async.Serving.Worker.Ocr;
using Async.Serving.Worker.Video;
using Microsoft.Extensions.Options;

namespace Async.Serving.Worker.Inference;

/// <summary>
/// Loads and warms every model this worker serves. It is registered before the bus, and the host
/// starts services one after another, so no message is taken before the models are ready.
/// </summary>
internal sealed partial class ModelHost(
    ModelRepository repository,
    IOptions<WorkerOptions> options,
    OnnxSessionFactory sessions,
    ModelBreakers breakers,
    IHostApplicationLifetime lifetime,
    ILogger<ModelHost> logger) : IHostedService, IAsyncDisposable
{
    private readonly Dictionary<string, LoadedModel> _loaded = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, OcrModel> _ocr = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, VideoModel> _videos = new(StringComparer.OrdinalIgnoreCase);

    public bool IsReady { get; private set; }

    /// <summary>The embedding models loaded in this worker.</summary>
    public IReadOnlyCollection<LoadedModel> Loaded => _loaded.Values;

    /// <summary>Every model this worker serves or loaded for one it serves, with the provider it runs on (for heartbeats).</summary>
    public IEnumerable<(ModelEntry Entry, string Provider)> Served =>
        _loaded.Values.Select(m => (m.Entry, m.Provider))
            .Concat(_ocr.Values.Select(m => (m.Entry, m.Provider)))
            .Concat(_videos.Values.Select(v => (v.Entry, v.Embedding.Provider)));

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

    public LoadedModel? Get(string modelId) => _loaded.GetValueOrDefault(modelId);

    public OcrModel? GetOcr(string modelId) => _ocr.GetValueOrDefault(modelId);

    public VideoModel? GetVideo(string modelId) => _videos.GetValueOrDefault(modelId);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var selected = Select(repository, options.Value);
        // Image models first (those served and those a video model needs), then the video models over them.
        var images = selected.SelectMany(e => repository.Dependencies(e).Append(e))
            .Where(e => e.Config.Pipeline != "video.analyze").Distinct().ToList();
        foreach (var entry in images)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (entry.Config.Pipeline == "image.ocr")
            {
                LoadOcrModel(entry);
            }
            else
            {
                LoadImageModel(entry);
            }
        }

        foreach (var entry in selected.Where(e => e.Config.Pipeline == "video.analyze"))
        {
            var v = entry.Config.Video!;
            var ocr = v.OcrModel.Length > 0 ? _ocr[repository.Resolve(v.OcrModel)!.Id] : null;
            _videos[entry.Id] = new VideoModel(entry, _loaded[repository.Resolve(v.EmbeddingModel)!.Id], ocr);
            LogVideo(logger, entry.Id, v.EmbeddingModel, v.OcrModel.Length > 0 ? v.OcrModel : "none");
        }

        if (_loaded.Count == 0 && _ocr.Count == 0)
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

    private void LoadImageModel(ModelEntry entry)
    {
        var started = Stopwatch.GetTimestamp();
        var (session, provider) = sessions.Create(entry.ModelPath, entry.Config.ExecutionProvider);
        var model = new LoadedModel(entry, session, provider, Stopwatch.GetElapsedTime(started));
        var warm = model.WarmUp();
        WorkerMetrics.ModelLoad.WithLabels(entry.Id, provider).Set(model.LoadTime.TotalSeconds);
        ObserveBatches(entry.Id, model.Batcher);
        ReportBatches(entry.Id, model.Batcher);
        _loaded[entry.Id] = model;
        LogLoaded(logger, entry.Id, provider, model.LoadTime.TotalMilliseconds, entry.Config.MaxBatchSize, warm.TotalMilliseconds);
    }

    private void LoadOcrModel(ModelEntry entry)
    {
        var model = new OcrModel(entry, sessions, options.Value);
        var warm = model.WarmUp();
        WorkerMetrics.ModelLoad.WithLabels(entry.Id, model.Provider).Set(model.LoadTime.TotalSeconds);
        var detectionBatch = WorkerMetrics.OcrDetectionBatchSize.WithLabels(entry.Id);
        model.Detector.BatchExecuted += (images, _, _, _) => detectionBatch.Observe(images);
        foreach (var batcher in model.Batchers)
        {
            ObserveBatches(batcher.Name, batcher);
            ReportBatches(entry.Id, batcher);
        }

        _ocr[entry.Id] = model;
        LogLoaded(logger, entry.Id, model.Provider, model.LoadTime.TotalMilliseconds, entry.Config.MaxBatchSize, warm.TotalMilliseconds);
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
        foreach (var model in _loaded.Values)
        {
            await model.DisposeAsync().ConfigureAwait(false);
        }

        _loaded.Clear();
        foreach (var model in _ocr.Values)
        {
            await model.DisposeAsync().ConfigureAwait(false);
        }

        _ocr.Clear();
    }

    [LoggerMessage(EventId = 110, Level = LogLevel.Information,
        Message = "Loaded {Model} on {Provider} in {LoadMs:F0} ms; warm-up batch of {BatchSize} took {WarmMs:F0} ms")]
    private static partial void LogLoaded(ILogger logger, string model, string provider, double loadMs, int batchSize, double warmMs);

    [LoggerMessage(EventId = 112, Level = LogLevel.Information, Message = "Video model {Model}: frames through {Embedding}, text through {Ocr}")]
    private static partial void LogVideo(ILogger logger, string model, string embedding, string ocr);

    [LoggerMessage(EventId = 111, Level = LogLevel.Information, Message = "Worker ready: serving {Models}")]
    private static partial void LogReady(ILogger logger, string models);
}
