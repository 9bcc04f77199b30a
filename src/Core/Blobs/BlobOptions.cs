using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Blobs;

/// <summary>Section <c>Serving:Blobs</c>: the blob store for large inputs and outputs (docs/blobs.md).</summary>
public sealed class BlobOptions : IValidatableObject
{
    public const string Section = "Serving:Blobs";

    /// <summary>
    /// The store's folder: on one host any local folder, across hosts a volume every API and worker
    /// mounts at this path. One folder per job store (Redis): the sweep deletes what its Redis does
    /// not reference. Default: <c>{temp}/async-serving-blobs</c>.
    /// </summary>
    public string Root { get; set; } = Path.Combine(Path.GetTempPath(), "async-serving-blobs");

    /// <summary>
    /// Inputs and outputs larger than this many bytes go to the blob store, the job keeping only a
    /// reference; smaller ones stay in Redis. A value at or above the largest input
    /// (<c>Serving:Limits:MaxVideoBytes</c>) keeps everything in Redis, as before the store existed.
    /// </summary>
    [Range(0, long.MaxValue)]
    public long InlineThreshold { get; set; } = 256 * 1024;

    /// <summary>
    /// How old an unreferenced blob must be before the sweep deletes it: longer than a submit takes
    /// from its upload's last byte to its job's creation (seconds), so a live submit is never swept.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:10", "7.00:00:00")]
    public TimeSpan OrphanAge { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Blobs the sweep looks at per run; the rest wait for the next run.</summary>
    [Range(1, 10_000_000)]
    public int SweepBatchSize { get; set; } = 10_000;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (string.IsNullOrWhiteSpace(Root) || !Path.IsPathFullyQualified(Root))
        {
            yield return new ValidationResult($"Serving:Blobs:Root must be an absolute path; it is '{Root}'.", [nameof(Root)]);
        }
    }
}
