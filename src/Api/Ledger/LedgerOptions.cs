using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.Ledger;

/// <summary>Section <c>Serving:Ledger</c>: the writer that copies job state changes from Redis into PostgreSQL.</summary>
public sealed class LedgerOptions
{
    public const string Section = "Serving:Ledger";

    /// <summary>Whether this process runs a ledger writer (any number of API instances may; they share one consumer group).</summary>
    public bool RunWriter { get; set; } = true;

    /// <summary>Stream entries per PostgreSQL transaction.</summary>
    [Range(1, 5000)]
    public int BatchSize { get; set; } = 500;

    /// <summary>Wait between reads when the stream has nothing new.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Longest wait between retries while PostgreSQL (or Redis) fails; the wait doubles from <see cref="PollInterval"/> up to this.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Entries read but not acknowledged this long by another writer (one that stopped) are taken over.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan ClaimIdle { get; set; } = TimeSpan.FromMinutes(1);
}
