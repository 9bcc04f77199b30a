using Prometheus;

namespace Async.Serving.Hosting;

/// <summary>
/// What the API's and the worker's Prometheus endpoints share (docs/observability.md). Only the
/// project's own <c>serving_*</c> metrics, prometheus-net's process metrics and the API's HTTP
/// metrics are scraped: the bridges that republish every .NET Meter and EventCounter (MassTransit
/// counters as gauges without <c>_total</c>, durations in milliseconds, dozens of <c>msquic</c>
/// series) are off. Those meters go out over OTLP instead. The runtime's thread pool and lock
/// counters are exported on their own (<see cref="AddRuntimeMetrics"/>).
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

    private static int _runtimeAdded;

    /// <summary>
    /// The runtime's thread pool and lock counters, read at each scrape: <c>dotnet_threadpool_completed_items_total</c>
    /// (work items the pool ran: every continuation handed from one thread to another is one, so per job it
    /// counts the hand-offs a job costs, whatever else the host runs; docs/benchmarks.md),
    /// <c>dotnet_threadpool_queue_length</c> (waiting: growing means starvation), <c>dotnet_threadpool_threads</c>,
    /// <c>dotnet_lock_contentions_total</c> and <c>dotnet_gc_pause_seconds_total</c> (time every thread of the
    /// process stood still for a collection: what the garbage collector adds to a request's latency). Once per process.
    /// </summary>
    public static void AddRuntimeMetrics()
    {
        if (Interlocked.Exchange(ref _runtimeAdded, 1) == 1)
        {
            return;
        }

        var completed = Metrics.CreateCounter("dotnet_threadpool_completed_items_total", "Work items the .NET thread pool has run since the process started (each a hand-off of work between threads).");
        var queued = Metrics.CreateGauge("dotnet_threadpool_queue_length", "Work items waiting in the .NET thread pool's queues.");
        var threads = Metrics.CreateGauge("dotnet_threadpool_threads", "Threads of the .NET thread pool.");
        var contentions = Metrics.CreateCounter("dotnet_lock_contentions_total", "Times a thread waited for a lock (Monitor) another thread held, since the process started.");
        var paused = Metrics.CreateCounter("dotnet_gc_pause_seconds_total", "Time the process's threads were paused for garbage collections since it started.");
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() =>
        {
            paused.IncTo(GC.GetTotalPauseDuration().TotalSeconds);
            completed.IncTo(ThreadPool.CompletedWorkItemCount);
            queued.Set(ThreadPool.PendingWorkItemCount);
            threads.Set(ThreadPool.ThreadCount);
            contentions.IncTo(Monitor.LockContentionCount);
        });
    }
}
