using Hangfire.States;
using Hangfire.Storage;

namespace Async.Serving.Api.Maintenance;

/// <summary>
/// Keeps the maintenance jobs' successes (the batches' sweep included) out of Hangfire's Succeeded list: five runs a minute would
/// bury the webhook deliveries operators look for there. A maintenance job that succeeds ends in
/// <see cref="MaintenanceDoneState"/> instead, which no dashboard list shows and which expires after
/// <see cref="Retention"/>; the job's page and its recurring job's "last execution" still show it.
/// Failures are untouched: they stay in the Failed list. Other jobs (webhook deliveries) keep
/// Hangfire's usual succeeded state and retention.
/// </summary>
internal sealed class MaintenanceRunFilter : IElectStateFilter, IApplyStateFilter
{
    /// <summary>How long a finished maintenance run is kept (its job page and result), instead of Hangfire's day.</summary>
    public static readonly TimeSpan Retention = TimeSpan.FromMinutes(10);

    public void OnStateElection(ElectStateContext context)
    {
        if (context.CandidateState is SucceededState succeeded && IsMaintenance(context.BackgroundJob.Job))
        {
            context.CandidateState = new MaintenanceDoneState(succeeded);
        }
    }

    /// <summary>The maintenance jobs, and the batches' minutely sweep (not the chunks that make a batch's jobs).</summary>
    private static bool IsMaintenance(global::Hangfire.Common.Job? job) =>
        job?.Type == typeof(MaintenanceJobs)
        || (job?.Type == typeof(Batches.BatchRunner) && job.Method.Name == nameof(Batches.BatchRunner.SweepAsync));

    public void OnStateApplied(ApplyStateContext context, IWriteOnlyTransaction transaction)
    {
        if (context.NewState is MaintenanceDoneState)
        {
            context.JobExpirationTimeout = Retention;
        }
    }

    public void OnStateUnapplied(ApplyStateContext context, IWriteOnlyTransaction transaction)
    {
    }
}

/// <summary>
/// A maintenance run that succeeded: final, with the succeeded state's data (result, latency,
/// duration), but no state handler, so it enters no list and no counter.
/// </summary>
public sealed class MaintenanceDoneState(SucceededState succeeded) : IState
{
    public const string StateName = "MaintenanceDone";

    public string Name => StateName;

    public string Reason => "Maintenance run succeeded (not kept in the Succeeded list)";

    public bool IsFinal => true;

    public bool IgnoreJobLoadException => false;

    public Dictionary<string, string> SerializeData() => succeeded.SerializeData();
}
