using Async.Serving.Api.Hangfire;
using Hangfire;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Maintenance;

public static class MaintenanceExtensions
{
    public const string Queue = "maintenance";

    /// <summary>
    /// The maintenance jobs, scheduled at start as Hangfire recurring jobs (needs <see cref="HangfireExtensions.AddServingHangfire"/>),
    /// and the one-time move of a job store of the first layout to the sharded one.
    /// </summary>
    public static IHostApplicationBuilder AddMaintenance(this IHostApplicationBuilder builder)
    {
        builder.Services.AddHostedService<Async.Serving.Jobs.JobStoreLayoutMigration>();
        builder.Services.AddOptionsWithValidateOnStart<MaintenanceOptions>()
            .BindConfiguration(MaintenanceOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddTransient<MaintenanceJobs>();
        builder.Services.AddHostedService<MaintenanceSchedule>();
        return builder;
    }
}

/// <summary>Adds or updates the recurring jobs; the same ids from every API instance, so there is one schedule.</summary>
internal sealed class MaintenanceSchedule(IServiceProvider services, IOptions<MaintenanceOptions> options) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (!settings.Schedule)
        {
            return Task.CompletedTask;
        }

        var manager = services.GetRequiredService<IRecurringJobManager>();
        var schedule = new RecurringJobOptions { TimeZone = TimeZoneInfo.Utc };
        manager.AddOrUpdate<MaintenanceJobs>("maintenance-expire-queued", MaintenanceExtensions.Queue,
            j => j.ExpireQueuedAsync(CancellationToken.None), settings.Cron, schedule);
        manager.AddOrUpdate<MaintenanceJobs>("maintenance-fail-lost", MaintenanceExtensions.Queue,
            j => j.FailLostJobsAsync(CancellationToken.None), settings.Cron, schedule);
        manager.AddOrUpdate<MaintenanceJobs>("maintenance-reconcile-ledger", MaintenanceExtensions.Queue,
            j => j.ReconcileLedgerAsync(CancellationToken.None), settings.Cron, schedule);
        manager.AddOrUpdate<MaintenanceJobs>("maintenance-purge-ledger", MaintenanceExtensions.Queue,
            j => j.PurgeLedgerAsync(CancellationToken.None), settings.Cron, schedule);
        manager.AddOrUpdate<MaintenanceJobs>("maintenance-sweep-blobs", MaintenanceExtensions.Queue,
            j => j.SweepBlobsAsync(CancellationToken.None), settings.Cron, schedule);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
