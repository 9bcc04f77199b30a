using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.Maintenance;

/// <summary>Section <c>Serving:Maintenance</c>: the recurring Hangfire jobs of queue <c>maintenance</c>.</summary>
public sealed class MaintenanceOptions
{
    public const string Section = "Serving:Maintenance";

    /// <summary>Whether this process registers (adds or updates) the recurring jobs at start.</summary>
    public bool Schedule { get; set; } = true;

    /// <summary>Cron expression of every maintenance job (Hangfire's five-field cron, UTC).</summary>
    [Required]
    public string Cron { get; set; } = "* * * * *";

    /// <summary>How long a running job's worker must have been gone before the job is failed <c>worker_lost</c>.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan WorkerLostGrace { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The workers' <c>Serving:Worker:MaxAttempts</c>: a job whose worker is gone is failed only once it
    /// used them all; below that, its message returns to the queue and another worker retries it.
    /// </summary>
    [Range(1, 20)]
    public int MaxAttempts { get; set; } = 3;

    /// <summary>Jobs looked at per run and kind; the rest waits for the next run.</summary>
    [Range(1, 100_000)]
    public int BatchSize { get; set; } = 1000;

    /// <summary>How long ledger rows are kept, counted from the job's creation (usage can look back 366 days).</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "3650.00:00:00")]
    public TimeSpan LedgerRetention { get; set; } = TimeSpan.FromDays(400);

    /// <summary>How long the ledger's status changes (the dashboard timeline) are kept.</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "3650.00:00:00")]
    public TimeSpan LedgerEventRetention { get; set; } = TimeSpan.FromDays(90);
}
