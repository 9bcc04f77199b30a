namespace Async.Serving.Worker.Inference;

/// <summary>The worker's pipelines by name, in the order they were registered (<see cref="PipelineRegistration.AddPipeline{TPipeline}"/>).</summary>
internal sealed class PipelineRegistry
{
    private readonly Dictionary<string, IPipeline> _byName = new(StringComparer.Ordinal);

    public PipelineRegistry(IEnumerable<IPipeline> pipelines)
    {
        All = [.. pipelines];
        foreach (var pipeline in All)
        {
            if (!_byName.TryAdd(pipeline.Name, pipeline))
            {
                throw new InvalidOperationException($"Two pipelines are registered as '{pipeline.Name}'.");
            }
        }
    }

    public IReadOnlyList<IPipeline> All { get; }

    /// <summary>The pipeline of this name; null when the worker has none.</summary>
    public IPipeline? Get(string pipeline) => _byName.GetValueOrDefault(pipeline);

    /// <summary>The pipeline that runs <paramref name="pipeline"/> jobs on <paramref name="modelId"/>; null when this worker serves no such model.</summary>
    public IPipeline? Find(string pipeline, string modelId) => Get(pipeline) is { } p && p.Serves(modelId) ? p : null;
}

internal static class PipelineRegistration
{
    /// <summary>Registers a pipeline: as itself (pipelines that build on it take it by type) and as one of the registry's <see cref="IPipeline"/>s.</summary>
    public static IServiceCollection AddPipeline<TPipeline>(this IServiceCollection services)
        where TPipeline : class, IPipeline
    {
        services.AddSingleton<TPipeline>();
        services.AddSingleton<IPipeline>(sp => sp.GetRequiredService<TPipeline>());
        return services;
    }
}
