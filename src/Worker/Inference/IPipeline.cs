using Async.Serving.Contracts;
using Async.Serving.Contracts.Outputs;
using Async.Serving.Models;
using Async.Serving.Worker.Batching;

namespace Async.Serving.Worker.Inference;

/// <summary>
/// One kind of job (<see cref="RunInference.Pipeline"/>, a name from <see cref="PipelineNames"/>)
/// together with the models of that kind this worker loaded. A new pipeline is a folder with a class
/// derived from <see cref="Pipeline{TModel}"/> and one <see cref="PipelineRegistration.AddPipeline{TPipeline}"/>
/// line in the worker's host set-up; <see cref="ModelHost"/> loads its models and the consumer runs its jobs
/// through the <see cref="PipelineRegistry"/>.
/// </summary>
internal interface IPipeline
{
    /// <summary>The pipeline's name, one of <see cref="PipelineNames"/>.</summary>
    string Name { get; }

    /// <summary>The models of this kind loaded in this worker, with the execution provider each runs on.</summary>
    IEnumerable<(ModelEntry Entry, string Provider)> Served { get; }

    /// <summary>Whether <paramref name="modelId"/> (<c>name@version</c>) is loaded here for this pipeline.</summary>
    bool Serves(string modelId);

    /// <summary>
    /// Loads and warms a model of this kind. The models it depends on (<see cref="ModelRepository.Dependencies"/>)
    /// are loaded before it, by their own pipelines.
    /// </summary>
    ModelLoad Load(ModelEntry entry);

    /// <summary>Runs one job on a model this pipeline serves; returns the job's output as JSON.</summary>
    Task<string> RunAsync(string modelId, JobInputSource input, RunInference job, IJobProgress progress, CancellationToken cancellationToken);

    /// <summary>Disposes the loaded models (at the worker's shutdown).</summary>
    ValueTask UnloadAsync();
}

/// <summary>
/// What loading one model took, for <see cref="ModelHost"/>'s metrics and log. A model without weights
/// of its own (<see cref="Composite"/>) runs on models loaded for other pipelines.
/// </summary>
internal sealed record ModelLoad(string Provider, TimeSpan LoadTime, TimeSpan WarmUp, IReadOnlyList<DynamicBatcher> Batchers, bool OwnWeights = true)
{
    public static ModelLoad Composite(string provider) => new(provider, TimeSpan.Zero, TimeSpan.Zero, [], OwnWeights: false);
}

/// <summary>A pipeline over loaded models of type <typeparamref name="TModel"/>, keyed by model id.</summary>
internal abstract class Pipeline<TModel> : IPipeline
    where TModel : class
{
    private readonly Dictionary<string, (TModel Model, ModelEntry Entry, string Provider)> _models = new(StringComparer.OrdinalIgnoreCase);

    public abstract string Name { get; }

    public IEnumerable<(ModelEntry Entry, string Provider)> Served => _models.Values.Select(m => (m.Entry, m.Provider));

    public bool Serves(string modelId) => _models.ContainsKey(modelId);

    /// <summary>The loaded model with this id; null when none is loaded here.</summary>
    public TModel? Get(string modelId) => _models.TryGetValue(modelId, out var m) ? m.Model : null;

    public ModelLoad Load(ModelEntry entry)
    {
        var (model, load) = LoadModel(entry);
        _models[entry.Id] = (model, entry, load.Provider);
        return load;
    }

    public Task<string> RunAsync(string modelId, JobInputSource input, RunInference job, IJobProgress progress, CancellationToken cancellationToken) =>
        RunJobAsync(_models[modelId].Model, input, job, progress, cancellationToken);

    public async ValueTask UnloadAsync()
    {
        foreach (var (model, _, _) in _models.Values)
        {
            if (model is IAsyncDisposable disposable)
            {
                await disposable.DisposeAsync().ConfigureAwait(false);
            }
        }

        _models.Clear();
    }

    /// <summary>Loads and warms one model.</summary>
    protected abstract (TModel Model, ModelLoad Load) LoadModel(ModelEntry entry);

    protected abstract Task<string> RunJobAsync(TModel model, byte[] input, RunInference job, IJobProgress progress, CancellationToken cancellationToken);

    /// <summary>
    /// Runs one job from its stored input. By default the bytes are read whole (an input in the blob
    /// store too: the API bounded it by the pipeline's limit) and passed to the overload above; a
    /// pipeline that can stream its input overrides this.
    /// </summary>
    protected virtual async Task<string> RunJobAsync(TModel model, JobInputSource input, RunInference job, IJobProgress progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        var bytes = await input.ReadAllAsync(cancellationToken).ConfigureAwait(false);
        return await RunJobAsync(model, bytes, job, progress, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>Where a long job reports how far it got (0–1).</summary>
internal interface IJobProgress
{
    ValueTask ReportAsync(double progress);
}
