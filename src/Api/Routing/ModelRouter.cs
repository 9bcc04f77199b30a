using Async.Serving.Api.Jobs;
using Async.Serving.Breakers;
using Async.Serving.Models;

namespace Async.Serving.Api.Routing;

/// <summary>
/// Picks the version a submit runs on. A submit that named <c>name@version</c> is pinned; one that
/// named a bare name (or none: the pipeline's default model) goes by the name's routing table when
/// it has one, else to the newest version as always. With a <c>routing_key</c> the choice is the
/// key's fixed place (<see cref="RoutingTable.Point"/>) among the weights, so a key keeps its version
/// while the weights stay; without one it is drawn at random by weight. A version that is not
/// available (<see cref="IModelAvailability"/>: its circuit breaker is open) is skipped, the other
/// weighted versions sharing its weight, unless none of them is available. What it read of the chosen
/// version comes with the choice (<see cref="Route"/>), so that the intake does not read that breaker again.
/// </summary>
internal sealed class ModelRouter(ModelRepository models, RoutingStore tables, IModelAvailability availability)
{
    private static readonly Prometheus.Counter Decisions = Prometheus.Metrics.CreateCounter(
        "serving_routing_decisions_total", "Submits of a bare model name routed by its routing table, by model name and the version chosen.",
        new Prometheus.CounterConfiguration { LabelNames = ["model", "version"] });

    /// <summary>The version a submit runs on, and its availability when routing read it for this submit (else null: not read).</summary>
    public readonly record struct Route(ModelEntry Model, ModelAvailability? Availability);

    public async Task<Route> RouteAsync(Submission submission, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(submission);
        var resolved = submission.Model;
        if (submission.RequestedModel?.Contains('@', StringComparison.Ordinal) == true
            || await tables.GetAsync(resolved.Name, cancellationToken).ConfigureAwait(false) is not { } table)
        {
            return new Route(resolved, null);
        }

        // Versions removed from the repository since the table was set, or of another pipeline, get nothing.
        List<(ModelEntry Version, int Weight)> weighted =
        [
            .. models.Versions(resolved.Name)
                .Where(v => v.Config.Pipeline == resolved.Config.Pipeline)
                .Select(v => (v, table.Weights.TryGetValue(v.Version, out var w) ? w : 0))
                .Where(v => v.Item2 > 0),
        ];
        var point = submission.RoutingKey is { } key ? RoutingTable.Point(resolved.Name, key) : Random.Shared.NextDouble() * 100;
        if (RoutingTable.Pick(weighted, point) is not { } chosen)
        {
            return new Route(resolved, null);
        }

        ModelAvailability? seen = null;
        if (weighted.Count > 1)
        {
            seen = await availability.CheckAsync(chosen.Id, cancellationToken).ConfigureAwait(false);
            if (!seen.Value.Available)
            {
                List<(ModelEntry Version, int Weight)> available = [];
                Dictionary<string, ModelAvailability> read = new(StringComparer.Ordinal);
                foreach (var candidate in weighted)
                {
                    if (candidate.Version.Id != chosen.Id
                        && await availability.CheckAsync(candidate.Version.Id, cancellationToken).ConfigureAwait(false) is { Available: true } answer)
                    {
                        available.Add(candidate);
                        read[candidate.Version.Id] = answer;
                    }
                }

                // None available: the choice stands, with the answer read for it (the intake's 503 and its Retry-After).
                if (RoutingTable.Pick(available, point) is { } other)
                {
                    (chosen, seen) = (other, read[other.Id]);
                }
            }
        }

        Decisions.WithLabels(chosen.Name, chosen.Version).Inc();
        return new Route(chosen, seen);
    }
}
