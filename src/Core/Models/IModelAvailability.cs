using Async.Serving.Breakers;

namespace Async.Serving.Models;

/// <summary>
/// Whether a model version may take new jobs now. Routing skips a version that may not (its weight
/// goes to the other versions of the name, in proportion) and keeps it only when none of the
/// name's weighted versions may. Implemented by the per-version circuit breaker
/// (<see cref="ModelBreakers"/>), registered with the serving defaults.
/// </summary>
public interface IModelAvailability
{
    /// <param name="modelId"><c>name@version</c>.</param>
    /// <returns>Whether it is available and, when not, when it is tried again (the intake's <c>Retry-After</c>).</returns>
    Task<ModelAvailability> CheckAsync(string modelId, CancellationToken cancellationToken);
}
