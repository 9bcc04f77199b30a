using Hangfire;
using Async.Serving.Api.Maintenance;
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
        // Dashboard sign-in: a session cookie other sites cannot make a browser send, and antiforgery
        // tokens, which Hangfire checks on every dashboard POST once IAntiforgery is registered.
        builder.Services.AddAuthentication().AddCookie(DashboardAuth.Scheme, o =>
        {
            o.Cookie.Name = DashboardAuth.CookieName;
            o.Cookie.Path = DashboardGuard.Prefix;
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            o.ExpireTimeSpan = builder.Configuration.GetValue($"{HangfireOptions.Section}:{nameof(HangfireOptions.DashboardSessionLifetime)}", TimeSpan.FromHours(8));
            o.SlidingExpiration = false;
            o.LoginPath = DashboardGuard.Prefix + "/login";
        });
        builder.Services.AddAntiforgery(o =>
        {
            o.Cookie.Name = DashboardAuth.CookieName + "_af";
            o.Cookie.Path = DashboardGuard.Prefix;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        });
        var postgres = builder.Configuration.GetConnectionString("Postgres")
            ?? throw new InvalidOperationException("ConnectionStrings:Postgres is not set.");
        builder.Services.AddHangfire((sp, cfg) =>
        {
            var options = sp.GetRequiredService<IOptions<HangfireOptions>>().Value;
            cfg.UseFilter(new WebhookQueueFilter(sp.GetRequiredService<IOptions<WebhookOptions>>().Value.Queue));
            cfg.UseFilter(new MaintenanceRunFilter());
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
                        // A delivery fetched by a server that lost PostgreSQL under it (or died) is
                        // fetched again after a minute, not after the default 30: the fetch time of a
                        // job still running is kept fresh in the background (sliding).
                        InvisibilityTimeout = TimeSpan.FromMinutes(1),
                        UseSlidingInvisibilityTimeout = true,
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

    /// <summary>
    /// The dashboard at <c>/hangfire</c>, behind the admin credential (a sign-in page and a session
    /// cookie; HTTP Basic for reading tools), never open; see <see cref="DashboardAuth"/>.
    /// </summary>
    public static void MapServingDashboard(this WebApplication app)
    {
        InferenceJobsPages.Register();
        app.UseWhen(
            context => context.Request.Path.StartsWithSegments(DashboardGuard.Prefix),
            branch => branch.UseMiddleware<DashboardGuard>());
        app.UseHangfireDashboard(DashboardGuard.Prefix, new DashboardOptions
        {
            Authorization = [new DashboardAuth.AdminFilter()],
            AsyncAuthorization = [],
            DashboardTitle = "Async.Serving operations",
            DisplayStorageConnectionString = false,
            IgnoreAntiforgeryToken = false,
        });
    }
}
