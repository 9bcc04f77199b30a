namespace Async.Serving.Models;

/// <summary>
/// Whether a model version may take new jobs now. Routing skips a version that may not (its weight
/// goes to the other versions of the name, in proportion) and keeps it only when none of the
/// name's weighted versions may. The per-version circuit breaker plugs in here; until then every
/// version is available (<see cref="AllModelsAvailable"/>).
/// </summary>
public interface IModelAvailability
{
    /// <param name="modelId"><c>name@version</c>.</param>
    ValueTask<bool> IsAvailableAsync(string modelId, CancellationToken cancellationToken);
}

/// <summary>Every version is available: the default, where no circuit breaker is registered.</summary>
public sealed class AllModelsAvailable : IModelAvailability
{
    public ValueTask<bool> IsAvailableAsync(string modelId, CancellationToken cancellationToken) => ValueTask.FromResult(true);
}
