using System.Diagnostics;
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
    OnnxSessionFactory sessions,
    IHostApplicationLifetime lifetime,
    ILogger<ModelHost> logger) : IHostedService, IAsyncDisposable
{
    private readonly Dictionary<string, LoadedModel> _loaded = new(StringComparer.OrdinalIgnoreCase);

    public bool IsReady { get; private set; }

    public IReadOnlyCollection<LoadedModel> Loaded => _loaded.Values;

    /// <summary>The models named by <c>Serving:Worker:Models</c>, or all of them; an unknown name fails start-up.</summary>
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

    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var entry in Select(repository, options.Value))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var started = Stopwatch.GetTimestamp();
            var (session, provider) = sessions.Create(entry.ModelPath, entry.Config.ExecutionProvider);
            var model = new LoadedModel(entry, session, provider, Stopwatch.GetElapsedTime(started));
            var warm = model.WarmUp();
            WorkerMetrics.ModelLoad.WithLabels(entry.Id, provider).Set(model.LoadTime.TotalSeconds);
            var batchSize = WorkerMetrics.BatchSize.WithLabels(entry.Id);
            var inference = WorkerMetrics.BatchInference.WithLabels(entry.Id);
            model.Batcher.BatchExecuted += (size, elapsed) =>
            {
                batchSize.Observe(size);
                inference.Observe(elapsed.TotalSeconds);
            };
            _loaded[entry.Id] = model;
            LogLoaded(logger, entry.Id, provider, model.LoadTime.TotalMilliseconds, entry.Config.MaxBatchSize, warm.TotalMilliseconds);
        }

        if (_loaded.Count == 0)
        {
            throw new ModelConfigException("This worker has no model to serve: the model repository is empty.");
        }

        IsReady = true;
        // "ready" once every hosted service has started, the bus included (it waits for its connection).
        lifetime.ApplicationStarted.Register(() => LogReady(logger, string.Join(", ", _loaded.Keys)));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        foreach (var model in _loaded.Values)
        {
            await model.DisposeAsync().ConfigureAwait(false);
        }

        _loaded.Clear();
    }

    [LoggerMessage(EventId = 110, Level = LogLevel.Information,
        Message = "Loaded {Model} on {Provider} in {LoadMs:F0} ms; warm-up batch of {BatchSize} took {WarmMs:F0} ms")]
    private static partial void LogLoaded(ILogger logger, string model, string provider, double loadMs, int batchSize, double warmMs);

    [LoggerMessage(EventId = 111, Level = LogLevel.Information, Message = "Worker ready: serving {Models}")]
    private static partial void LogReady(ILogger logger, string models);
}
