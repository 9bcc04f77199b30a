using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.Cache;

/// <summary>The result cache (section <c>Serving:Cache</c>); see docs/cache.md.</summary>
public sealed class CacheOptions : IValidatableObject
{
    public const string Section = "Serving:Cache";

    /// <summary>Off: no job is looked up or stored (every job says <c>cache: "off"</c>).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>One cache for every tenant (an output is served to another tenant that sends the same input); by default each tenant has its own.</summary>
    public bool Shared { get; set; }

    /// <summary>How long an entry serves after it was stored.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00")]
    public TimeSpan Ttl { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// The bytes of outputs the cache may hold, split evenly over the job store's 16 shards (each
    /// shard's entries sit in one Redis Cluster slot); the oldest entries of a shard go first.
    /// </summary>
    [Range(16 * 1024, long.MaxValue)]
    public long MaxBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>A larger output is not stored (its job still succeeds).</summary>
    [Range(1, long.MaxValue)]
    public long MaxEntryBytes { get; set; } = 1024 * 1024;

    /// <summary>Concurrent identical submits share one inference (single flight).</summary>
    public bool SingleFlight { get; set; } = true;

    /// <summary>The pipelines whose outputs are cached; null (the default) for every pipeline.</summary>
    public string[]? Pipelines { get; set; }

    /// <summary>How often the API looks for followers to send on their own (their leader was cancelled or expired).</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan ReleaseInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The byte bound of one shard.</summary>
    public long MaxShardBytes => MaxBytes / Async.Serving.Jobs.RedisJobStore.ShardCount;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        foreach (var pipeline in (Pipelines ?? []).Where(p => !Contracts.Outputs.PipelineNames.All.Contains(p)))
        {
            yield return new ValidationResult(
                $"Serving:Cache:Pipelines names '{pipeline}'; pipelines are {string.Join(", ", Contracts.Outputs.PipelineNames.All)}.", [nameof(Pipelines)]);
        }

        if (MaxEntryBytes > MaxShardBytes)
        {
            yield return new ValidationResult(
                $"Serving:Cache:MaxEntryBytes ({MaxEntryBytes}) is larger than a shard's part of MaxBytes ({MaxShardBytes} = MaxBytes / 16): no entry that size could be stored.",
                [nameof(MaxEntryBytes)]);
        }
    }
}
