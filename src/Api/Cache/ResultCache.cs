using Async.Serving.Api.Jobs;
using Async.Serving.Jobs;
using Microsoft.Extensions.Options;
using Prometheus;

namespace Async.Serving.Api.Cache;

/// <summary>
/// Decides whether a submit takes part in the result cache and with which key (a
/// <see cref="CacheTicket"/>), and counts what came of it. The lookup and the job's creation are one
/// step in the job store (<see cref="RedisJobStore.CreateCachedAsync"/>); the entry is written by
/// the completion of the job that computed it, in the same step as its status.
/// </summary>
internal sealed class ResultCache
{
    private static readonly Counter Lookups = Metrics.CreateCounter(
        "serving_cache_lookups_total", "Submits that looked up the result cache, by result: hit (served from the cache), miss (computed), follow (joined a job computing the same output: single flight).",
        new CounterConfiguration { LabelNames = ["pipeline", "model", "result"] });

    private static readonly Counter SavedSeconds = Metrics.CreateCounter(
        "serving_cache_saved_compute_seconds_total", "Execution seconds that cache hits did not spend: per hit, the execution time of the job that computed the output.",
        new CounterConfiguration { LabelNames = ["pipeline", "model"] });

    private static readonly Gauge Entries = Metrics.CreateGauge(
        "serving_cache_entries", "Entries the result cache holds, from the job store (every API reports the same value).");

    private static readonly Gauge Bytes = Metrics.CreateGauge(
        "serving_cache_bytes", "Bytes of outputs the result cache holds, from the job store (every API reports the same value).");

    private readonly IOptions<CacheOptions> _options;
    private readonly ModelFingerprints _fingerprints;

    public ResultCache(IOptions<CacheOptions> options, ModelFingerprints fingerprints, RedisJobStore store)
    {
        _options = options;
        _fingerprints = fingerprints;
        // The size gauges are read from Redis when /metrics is scraped, not kept by each API.
        Metrics.DefaultRegistry.AddBeforeCollectCallback(async cancellationToken =>
        {
            try
            {
                var (entries, bytes) = await store.CacheSizeAsync().WaitAsync(TimeSpan.FromSeconds(3), cancellationToken).ConfigureAwait(false);
                Entries.Set(entries);
                Bytes.Set(bytes);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Redis unreachable (or this host stopped): the previous values are served, as for the queue gauges.
            }
        });
    }

    /// <summary>The submit's ticket, or null when it does not take part (<c>cache: "off"</c>).</summary>
    public CacheTicket? TicketFor(Submission submission, string tenant)
    {
        ArgumentNullException.ThrowIfNull(submission);
        var options = _options.Value;
        if (!options.Enabled || !submission.Cache || options.Pipelines?.Contains(submission.Pipeline, StringComparer.Ordinal) == false)
        {
            return null;
        }

        var key = CacheKeys.ComputeFromHash(options.Shared ? "*" : "tenant:" + tenant, submission.Pipeline, submission.Model.Id,
            _fingerprints.Of(submission.Model), submission.ParamsJson, submission.Input.Sha256);
        return new CacheTicket(key, options.Ttl, options.MaxShardBytes, options.MaxEntryBytes, options.SingleFlight);
    }

    /// <summary>Counts a lookup's result.</summary>
    public static void Count(Submission submission, CachedCreate outcome)
    {
        ArgumentNullException.ThrowIfNull(submission);
        var (pipeline, model) = (submission.Pipeline, submission.Model.Id);
        switch (outcome)
        {
            case CachedCreate.Hit hit:
                Lookups.WithLabels(pipeline, model, "hit").Inc();
                SavedSeconds.WithLabels(pipeline, model).Inc(hit.SavedMs / 1000.0);
                break;
            case CachedCreate.Follow:
                Lookups.WithLabels(pipeline, model, "follow").Inc();
                break;
            default:
                Lookups.WithLabels(pipeline, model, "miss").Inc();
                break;
        }
    }
}
