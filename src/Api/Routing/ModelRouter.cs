using Async.Serving.Api.Jobs;
using Async.Serving.Models;

namespace Async.Serving.Api.Routing;

/// <summary>
/// Picks the version a submit runs on. A submit that named <c>name@version</c> is pinned; one that
/// named a bare name (or none: the pipeline's default model) goes by the name's routing table when
/// it has one, else to the newest version as always. With a <c>routing_key</c> the choice is the
/// key's fixed place (<see cref="RoutingTable.Point"/>) among the weights, so a key keeps its version
/// while the weights stay; without one it is drawn at random by weight. A version that is not
/// available (<see cref="IModelAvailability"/>: its circuit breaker is open) is skipped, the other
/// weighted versions sharing its weight, unless none of them is available.
/// </summary>
internal sealed class ModelRouter(ModelRepository models, RoutingStore tables, IModelAvailability availability)
{
    private static readonly Prometheus.Counter Decisions = Prometheus.Metrics.CreateCounter(
        "serving_routing_decisions_total", "Submits of a bare model name routed by its routing table, by model name and the version chosen.",
        new Prometheus.CounterConfiguration { LabelNames = ["model", "version"] });

    public async Task<ModelEntry> RouteAsync(Submission submission, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(submission);
        var resolved = submission.Model;
        if (submission.RequestedModel?.Contains('@', StringComparison.Ordinal) == true
            || await tables.GetAsync(resolved.Name, cancellationToken).ConfigureAwait(false) is not { } table)
        {
            return resolved;
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
            return resolved;
        }

        if (weighted.Count > 1 && !await availability.IsAvailableAsync(chosen.Id, cancellationToken).ConfigureAwait(false))
        {
            List<(ModelEntry Version, int Weight)> available = [];
            foreach (var candidate in weighted)
            {
                if (candidate.Version.Id != chosen.Id && await availability.IsAvailableAsync(candidate.Version.Id, cancellationToken).ConfigureAwait(false))
                {
                    available.Add(candidate);
                }
            }

            chosen = RoutingTable.Pick(available, point) ?? chosen;
        }

        Decisions.WithLabels(chosen.Name, chosen.Version).Inc();
        return chosen;
    }
}
