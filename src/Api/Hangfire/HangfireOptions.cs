using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.Hangfire;

/// <summary>Section <c>Serving:Hangfire</c>: background jobs (webhook deliveries, maintenance) and the operator dashboard.</summary>
public sealed class HangfireOptions
{
    public const string Section = "Serving:Hangfire";

    /// <summary>How often idle Hangfire workers look for new jobs in PostgreSQL; low, so a webhook leaves within a second.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan QueuePollInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The PostgreSQL schema of Hangfire's tables; processes that share one work together, and only they.</summary>
    [Required]
    [RegularExpression("^[a-z_][a-z0-9_]{0,62}$")]
    public string SchemaName { get; set; } = "hangfire";

    /// <summary>How often a server moves due scheduled jobs (webhook retries) to their queue; Hangfire's own default is 15 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan SchedulePollingInterval { get; set; } = TimeSpan.FromSeconds(1);

    [Range(1, 256)]
    public int WorkerCount { get; set; } = 8;

    /// <summary>Dashboard user (sign-in page, or HTTP Basic for reading). The dashboard refuses everyone while no password is set.</summary>
    [Required]
    public string DashboardUsername { get; set; } = "admin";

    public string? DashboardPassword { get; set; }

    /// <summary>How long a dashboard sign-in lasts (not extended by use).</summary>
    [Range(typeof(TimeSpan), "00:05:00", "7.00:00:00")]
    public TimeSpan DashboardSessionLifetime { get; set; } = TimeSpan.FromHours(8);

    /// <summary>Whether this process runs a Hangfire server (API instances may leave delivery to others).</summary>
    public bool RunServer { get; set; } = true;
}
