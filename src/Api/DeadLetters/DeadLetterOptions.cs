using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.DeadLetters;

/// <summary>Section <c>Serving:DeadLetters</c>: the sweeper that ends the jobs of dead-lettered messages.</summary>
public sealed class DeadLetterOptions
{
    public const string Section = "Serving:DeadLetters";

    /// <summary>Whether this process sweeps (any number of API instances may: each message is taken by one).</summary>
    public bool RunSweeper { get; set; } = true;

    /// <summary>How often the <c>_error</c> and <c>_skipped</c> queues of every model are looked at.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Messages taken from one queue per sweep, so one flooded queue does not starve the others.</summary>
    [Range(1, 100_000)]
    public int MaxPerQueue { get; set; } = 500;

    /// <summary>Where messages that name no job are moved (kept for operators, never dropped).</summary>
    [Required]
    public string UnreadableQueue { get; set; } = "dead-letters-unreadable";
}
