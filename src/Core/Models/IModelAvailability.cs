namespace Async.Serving.Models;

/// <summary>
/// Whether a model version may take new jobs now. Routing skips a version that may not (its weight
/// goes to the other versions of the name, in proportion) and keeps it only when none of the
/// name's weighted versions may. Implemented by the per-version circuit breaker
/// (<see cref="Breakers.ModelBreakers"/>), registered with the serving defaults.
/// </summary>
public interface IModelAvailability
{
    /// <param name="modelId"><c>name@version</c>.</param>
    ValueTask<bool> IsAvailableAsync(string modelId, CancellationToken cancellationToken);
}
