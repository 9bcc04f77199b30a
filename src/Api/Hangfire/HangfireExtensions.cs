using Hangfire;
using Async.Serving.Api.Webhooks;
using Hangfire.PostgreSql;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Hangfire;

public static class HangfireExtensions
{
    /// <summary>Queues after the webhook queue (<c>Serving:Webhooks:Queue</c>), in the order a Hangfire worker takes them.</summary>
    public static readonly string[] Queues = ["maintenance", "default"];

    /// <summary>Hangfire on PostgreSQL (schema <c>hangfire</c> unless configured, created when missing) and, unless turned off, a Hangfire server in this process.</summary>
    public static IHostApplicationBuilder AddServingHangfire(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<HangfireOptions>()
            .BindConfiguration(HangfireOptions.Section)
            .ValidateDataAnnotations();
        var postgres = builder.Configuration.GetConnectionString("Postgres")
            ?? throw new InvalidOperationException("ConnectionStrings:Postgres is not set.");
        builder.Services.AddHangfire((sp, cfg) =>
        {
            var options = sp.GetRequiredService<IOptions<HangfireOptions>>().Value;
            cfg.UseFilter(new WebhookQueueFilter(sp.GetRequiredService<IOptions<WebhookOptions>>().Value.Queue));
            cfg.SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
                .UseSimpleAssemblyNameTypeSerializer()
                .UseRecommendedSerializerSettings()
                .UsePostgreSqlStorage(
                    c => c.UseNpgsqlConnection(postgres),
                    new PostgreSqlStorageOptions
                    {
                        SchemaName = options.SchemaName,
                        PrepareSchemaIfNecessary = true,
                        QueuePollInterval = options.QueuePollInterval,
                    });
        });
        if (builder.Configuration.GetValue($"{HangfireOptions.Section}:{nameof(HangfireOptions.RunServer)}", true))
        {
            builder.Services.AddHangfireServer((sp, server) =>
            {
                var options = sp.GetRequiredService<IOptions<HangfireOptions>>().Value;
                server.WorkerCount = options.WorkerCount;
                server.SchedulePollingInterval = options.SchedulePollingInterval;
                server.Queues = [sp.GetRequiredService<IOptions<WebhookOptions>>().Value.Queue, .. Queues];
                server.ServerName = $"api-{Environment.MachineName}-{Environment.ProcessId}";
            });
        }

        return builder;
    }

    /// <summary>The dashboard at <c>/hangfire</c>, behind the admin credential (HTTP Basic), never open.</summary>
    public static void MapServingDashboard(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<HangfireOptions>>().Value;
        InferenceJobsPages.Register();
        app.UseHangfireDashboard("/hangfire", new DashboardOptions
        {
            Authorization = [new DashboardBasicAuthFilter(options)],
            AsyncAuthorization = [],
            DashboardTitle = "Async.Serving operations",
            DisplayStorageConnectionString = false,
            IgnoreAntiforgeryToken = false,
        });
    }
}
