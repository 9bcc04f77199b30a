using Prometheus;

namespace Async.Serving.Hosting;

/// <summary>
/// What the API's and the worker's Prometheus endpoints share (docs/observability.md). Only the
/// project's own <c>serving_*</c> metrics, prometheus-net's process metrics and the API's HTTP
/// metrics are scraped: the bridges that republish every .NET Meter and EventCounter (MassTransit
/// counters as gauges without <c>_total</c>, durations in milliseconds, dozens of <c>msquic</c>
/// series) are off. Those meters go out over OTLP instead.
/// </summary>
public static class ServingMetrics
{
    /// <summary>Histogram buckets for durations, in seconds: 1 ms to 1 h (queue waits of a backlog included).</summary>
    public static readonly double[] SecondsBuckets =
        [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

    /// <summary>Turns off the Meter, EventCounter and debug bridges of the default registry; before its first scrape, so at start.</summary>
    public static void SuppressLibraryBridges() =>
        Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions
        {
            SuppressMeters = true,
            SuppressEventCounters = true,
            SuppressDebugMetrics = true,
            SuppressProcessMetrics = false,
        });
}
