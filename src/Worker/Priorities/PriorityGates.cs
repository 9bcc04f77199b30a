using System.Collections.Concurrent;

namespace Async.Serving.Worker.Priorities;

/// <summary>
/// The <see cref="PriorityGate"/> of each model this worker serves, by model id (<c>name@version</c>),
/// added as the model's lanes' receive endpoints are configured (<see cref="Hosting.WorkerHostExtensions.AddWorkerBus"/>).
/// </summary>
internal sealed class PriorityGates
{
    private static readonly IDisposable NoSlot = new Nothing();

    private readonly ConcurrentDictionary<string, PriorityGate> _gates = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The model's gate with <paramref name="slots"/> slots; the first one added stays (one per model and process).</summary>
    public PriorityGate Add(string modelId, int slots) => _gates.GetOrAdd(modelId, _ => new PriorityGate(slots));

    public PriorityGate? Find(string modelId) => _gates.GetValueOrDefault(modelId);

    /// <summary>
    /// A slot of the model's in-flight limit for a job of <paramref name="priority"/>; dispose it when
    /// the job has ended. A model without a gate (this worker does not serve it: the job fails at once) takes none.
    /// </summary>
    public ValueTask<IDisposable> AcquireAsync(string modelId, string priority, CancellationToken cancellationToken) =>
        Find(modelId) is { } gate ? gate.AcquireAsync(priority, cancellationToken) : ValueTask.FromResult(NoSlot);

    private sealed class Nothing : IDisposable
    {
        public void Dispose()
        {
        }
    }
}
