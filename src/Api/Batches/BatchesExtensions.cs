using Async.Serving.Api.Ledger;
using Hangfire;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Batches;

public static class BatchesExtensions
{
    /// <summary>
    /// Batch jobs: options, the tables (created at start), the upload reader, the Hangfire runner and its
    /// sweep, and the ledger writer's sink extended to keep batch lines in step with their jobs. Call
    /// after <see cref="LedgerExtensions.AddLedger"/> and <see cref="Hangfire.HangfireExtensions.AddServingHangfire"/>.
    /// </summary>
    public static IHostApplicationBuilder AddBatches(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<BatchOptions>()
            .BindConfiguration(BatchOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<BatchStore>();
        builder.Services.AddHostedService<BatchSchemaMigration>();
        builder.Services.AddSingleton<BatchUpload>();
        builder.Services.AddSingleton<BatchCompletion>();
        builder.Services.AddTransient<BatchRunner>();
        builder.Services.AddHostedService<BatchSchedule>();
        BatchPages.Register();

        // The ledger writer's sink (where this process runs one) also moves batch lines.
        var sink = builder.Services.LastOrDefault(d => d.ServiceType == typeof(ILedgerSink));
        if (sink is not null)
        {
            builder.Services.Remove(sink);
            builder.Services.AddSingleton<ILedgerSink>(sp => new BatchLedgerSink(
                Resolve(sink, sp), sp.GetRequiredService<BatchStore>(), sp.GetRequiredService<BatchCompletion>()));
        }

        return builder;
    }

    private static ILedgerSink Resolve(ServiceDescriptor descriptor, IServiceProvider services) =>
        (ILedgerSink)(descriptor.ImplementationInstance
            ?? descriptor.ImplementationFactory?.Invoke(services)
            ?? ActivatorUtilities.CreateInstance(services, descriptor.ImplementationType!));
}

/// <summary>Creates the batch tables before the API takes requests.</summary>
internal sealed class BatchSchemaMigration(BatchStore store) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => store.MigrateAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Adds or updates the sweep's recurring job (the same id from every API instance, so one schedule).</summary>
internal sealed class BatchSchedule(IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        services.GetRequiredService<IRecurringJobManager>().AddOrUpdate<BatchRunner>(
            "batches-sweep", Maintenance.MaintenanceExtensions.Queue, r => r.SweepAsync(CancellationToken.None), Cron.Minutely(),
            new RecurringJobOptions { TimeZone = TimeZoneInfo.Utc });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
