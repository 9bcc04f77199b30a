using Async.Serving.Jobs;
using Async.Serving.Models;
using Prometheus;

namespace Async.Serving.Api.Observability;

/// <summary>
/// The per-model queue gauges, read from the job store when <c>/metrics</c> is scraped (at most once
/// per <see cref="MinInterval"/>): queued jobs and the age of the oldest from each shard's
/// queued-by-model index (<see cref="RedisJobStore.QueuedByModel"/>), running jobs from the running
/// index, live workers from their heartbeats. One pipelined Redis round trip of O(log n) reads, so
/// a scrape costs the same with 10 or 10 million jobs queued. Every API instance reports the same
/// values: aggregate them with <c>max</c>, not <c>sum</c>.
/// </summary>
/// <remarks>
/// The job store rather than RabbitMQ: it knows when each queued job was submitted (RabbitMQ's
/// quorum queues expose no message age, and its management API may be off), it counts what clients
/// see as <c>queued</c>, and it needs no broker round trip per model.
/// </remarks>
internal sealed partial class QueueMetrics(RedisJobStore store, WorkerRegistry workers, ModelRepository models, TimeProvider clock, ILogger<QueueMetrics> logger)
{
    private static readonly TimeSpan MinInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(3);

    private static readonly Gauge Depth = Metrics.CreateGauge(
        "serving_queue_depth", "Jobs queued for a model (submitted, not started yet), from the job store.",
        new GaugeConfiguration { LabelNames = ["pipeline", "model"] });

    private static readonly Gauge OldestAge = Metrics.CreateGauge(
        "serving_queue_oldest_age_seconds", "Age of the oldest job queued for a model (0 when none waits).",
        new GaugeConfiguration { LabelNames = ["pipeline", "model"] });

    private static readonly Gauge Workers = Metrics.CreateGauge(
        "serving_model_workers", "Workers serving a model, by their heartbeats (a worker counts while its last beat is under 15 s old).",
        new GaugeConfiguration { LabelNames = ["pipeline", "model"] });

    private static readonly Gauge Running = Metrics.CreateGauge(
        "serving_jobs_running", "Jobs running on any worker, from the job store.");

    private static readonly Gauge OldestRunning = Metrics.CreateGauge(
        "serving_jobs_running_oldest_age_seconds", "Time since the longest-running job started (0 when none runs).");

    private static readonly Counter RefreshFailures = Metrics.CreateCounter(
        "serving_queue_metrics_refresh_failures_total", "Scrapes whose queue gauges could not be read from Redis (the previous values were served).");

    private readonly SemaphoreSlim _gate = new(1, 1);
    private DateTimeOffset _refreshedAt = DateTimeOffset.MinValue;

    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var now = clock.GetUtcNow();
            if (now - _refreshedAt < MinInterval)
            {
                return;
            }

            var entries = models.All.ToList();
            var queued = store.QueuedByModelAsync(entries.Select(e => e.Id));
            var live = Task.WhenAll(entries.Select(e => workers.LiveAsync(e.Id)));
            var running = store.RunningAsync();
            await Task.WhenAll(queued, live, running).WaitAsync(ReadTimeout, cancellationToken).ConfigureAwait(false);

            var (queuedJobs, workerCounts) = (await queued.ConfigureAwait(false), await live.ConfigureAwait(false));
            for (var i = 0; i < entries.Count; i++)
            {
                var (pipeline, model) = (entries[i].Config.Pipeline, entries[i].Id);
                var (depth, oldest) = queuedJobs[model];
                Depth.WithLabels(pipeline, model).Set(depth);
                OldestAge.WithLabels(pipeline, model).Set(oldest is { } at ? Math.Max(0, (now - at).TotalSeconds) : 0);
                Workers.WithLabels(pipeline, model).Set(workerCounts[i].Workers);
            }

            var (count, oldestStart) = await running.ConfigureAwait(false);
            Running.Set(count);
            OldestRunning.Set(oldestStart is { } started ? Math.Max(0, (now - started).TotalSeconds) : 0);
            _refreshedAt = now;
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            RefreshFailures.Inc();
            LogRefreshFailed(logger, ex.Message);
        }
        finally
        {
            _gate.Release();
        }
    }

    [LoggerMessage(EventId = 800, Level = LogLevel.Warning, Message = "Queue metrics not refreshed (previous values served): {Reason}")]
    private static partial void LogRefreshFailed(ILogger logger, string reason);
}
