using Async.Serving.Breakers;
using Async.Serving.Models;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Async.Serving.Api.Models;

public static class ModelsApi
{
    public static void MapModelsApi(this IEndpointRouteBuilder app) =>
        app.MapGet("/v1/models", ListAsync)
            .RequireAuthorization("tenant")
            .WithTags("Models")
            .WithName("ListModels")
            .WithSummary("Models served, their versions, batching settings and live workers.");

    internal static async Task<Ok<ModelList>> ListAsync(
        ModelRepository repository, WorkerRegistry registry, ModelBreakers breakers, TimeProvider clock, CancellationToken cancellationToken)
    {
        var entries = repository.All.OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
        var live = await Task.WhenAll(entries.Select(e => registry.LiveAsync(e.Id))).ConfigureAwait(false);
        var tripped = (await breakers.NotClosedAsync(1000, cancellationToken).ConfigureAwait(false)).ToDictionary(b => b.Name, StringComparer.Ordinal);
        var now = clock.GetUtcNow();
        var models = entries.Select((e, i) => new ModelResource
        {
            Id = e.Id,
            Name = e.Name,
            Version = e.Version,
            Latest = repository.Resolve(e.Name) == e,
            Pipeline = e.Config.Pipeline,
            Input = e.Config.Pipeline == "image.embed" ? new TensorResource(e.Config.Input.Name, e.Config.Input.Shape) : null,
            Uses = [.. repository.Dependencies(e).Select(d => d.Id)],
            Batching = new BatchingResource(e.Config.MaxBatchSize, e.Config.MaxQueueDelayMs, e.Config.Instances),
            PreferredExecutionProvider = e.Config.ExecutionProvider,
            Workers = live[i].Workers,
            ExecutionProviders = live[i].Providers,
            State = tripped.TryGetValue(e.Id, out var b) ? (b.State == BreakerState.Open ? "open" : "half_open") : "closed",
            Available = !tripped.TryGetValue(e.Id, out var o) || o.State != BreakerState.Open || o.OpenUntil <= now,
        }).ToList();
        return TypedResults.Ok(new ModelList(models));
    }
}

public sealed record ModelList(IReadOnlyList<ModelResource> Data);

public sealed record ModelResource
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required string Version { get; init; }
    public required bool Latest { get; init; }
    public required string Pipeline { get; init; }
    /// <summary>The graph input of an <c>image.embed</c> model; null for OCR (three networks) and video models (none of their own).</summary>
    public required TensorResource? Input { get; init; }

    /// <summary>The models this one runs its work through (a video model's embedding and OCR models).</summary>
    public required IReadOnlyList<string> Uses { get; init; }
    public required BatchingResource Batching { get; init; }
    public required string PreferredExecutionProvider { get; init; }

    /// <summary>Workers that announced this model within the last 15 s.</summary>
    public required int Workers { get; init; }

    /// <summary>Providers those workers actually run it on (<c>cuda</c>, <c>cpu</c>).</summary>
    public required IReadOnlyList<string> ExecutionProviders { get; init; }

    /// <summary>The version's circuit breaker: <c>closed</c>, <c>open</c> (its batches kept failing) or <c>half_open</c> (the next job tries it).</summary>
    public required string State { get; init; }

    /// <summary>False while the breaker is open: submits for this version answer 503 <c>model_unavailable</c>.</summary>
    public required bool Available { get; init; }
}

public sealed record TensorResource(string Name, int[] Shape);

public sealed record BatchingResource(int MaxBatchSize, int MaxQueueDelayMs, int Instances);
