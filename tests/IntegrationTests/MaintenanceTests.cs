using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Async.Serving.Api.Maintenance;
using Async.Serving.Jobs;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

/// <summary>The recurring maintenance jobs, run directly instead of waiting for their minute.</summary>
[Collection(ServingCollection.Name)]
public sealed class MaintenanceTests(ServingFixture serving)
{
    [Fact]
    public async Task A_queued_job_past_its_ttl_expires_although_no_worker_serves_its_model()
    {
        using var models = new PrivateModels(); // no worker serves it
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path });
        using var client = serving.Client(api);
        var response = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "image.embed",
            model = models.Name,
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(601, 64, 64)) },
            ttl_seconds = 1,
        });
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

        var maintenance = api.Services.GetRequiredService<MaintenanceJobs>();
        await maintenance.ExpireQueuedAsync(CancellationToken.None); // not yet due
        Assert.Equal("queued", (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}")).GetProperty("status").GetString());

        await Task.Delay(TimeSpan.FromSeconds(1.2));
        await maintenance.ExpireQueuedAsync(CancellationToken.None);
        var job = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
        Assert.Equal("expired", job.GetProperty("status").GetString());
        Assert.Equal("expired", job.GetProperty("error").GetProperty("code").GetString());
        await LedgerTests.WaitForRowAsync(api, id, "expired");
    }

    [Fact]
    public async Task A_running_job_whose_worker_is_gone_fails_worker_lost_only_once_its_attempts_are_used()
    {
        using var models = new PrivateModels();
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Models:Path"] = models.Path,
            ["Serving:Maintenance:WorkerLostGrace"] = "00:00:00",
        });
        var store = api.Services.GetRequiredService<RedisJobStore>();
        var ghost = "ghost-" + Guid.NewGuid().ToString("N")[..8]; // a worker that never beats

        Task<string> RunningAsync(int attempts) => StoreJobAsync(store, models.Name + "@1", ghost, attempts);

        var exhausted = await RunningAsync(3);
        var retriable = await RunningAsync(1);
        try
        {
            await api.Services.GetRequiredService<MaintenanceJobs>().FailLostJobsAsync(CancellationToken.None);

            var lost = await store.GetAsync(exhausted);
            Assert.Equal(JobStatuses.Failed, lost!.Status);
            Assert.Equal(MaintenanceJobs.WorkerLostCode, lost.ErrorCode);
            Assert.Equal(ghost, lost.WorkerId);
            Assert.Equal(JobStatuses.Running, (await store.GetAsync(retriable))!.Status);
            await LedgerTests.WaitForRowAsync(api, exhausted, "failed");
        }
        finally
        {
            await store.FailAsync(retriable, JobErrorCodes.InternalError, "test cleanup");
        }
    }

    [Fact]
    public async Task A_job_whose_worker_is_live_is_left_running()
    {
        using var models = new PrivateModels();
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Models:Path"] = models.Path,
            ["Serving:Maintenance:WorkerLostGrace"] = "00:00:00",
        });
        var store = api.Services.GetRequiredService<RedisJobStore>();
        var worker = "live-" + Guid.NewGuid().ToString("N")[..8];
        await api.Services.GetRequiredService<Async.Serving.Models.WorkerRegistry>().BeatAsync(worker, [(models.Name + "@1", "cpu")]);
        var job = await StoreJobAsync(store, models.Name + "@1", worker, attempts: 3);

        try
        {
            await api.Services.GetRequiredService<MaintenanceJobs>().FailLostJobsAsync(CancellationToken.None);
            Assert.Equal(JobStatuses.Running, (await store.GetAsync(job))!.Status);
        }
        finally
        {
            await store.FailAsync(job, JobErrorCodes.InternalError, "test cleanup");
        }
    }

    [Fact]
    public async Task Reconcile_brings_a_ledger_row_whose_changes_were_missed_up_to_date()
    {
        var store = serving.Api.Services.GetRequiredService<RedisJobStore>();
        var ledger = serving.Api.Services.GetRequiredService<Async.Serving.Api.Ledger.LedgerStore>();
        var id = await StoreJobAsync(store, "resnet18@1", worker: "", attempts: 0);
        await LedgerTests.WaitForRowAsync(serving.Api, id, JobStatuses.Queued);
        // The change happens behind the ledger's back (as with a worker of an older version) and the row ages.
        var redis = serving.Api.Services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>().GetDatabase();
        await redis.HashSetAsync(RedisJobStore.JobKey(id), [new("status", JobStatuses.Cancelled), new("completed_at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())]);
        await AgeLedgerRowAsync(id);

        await serving.Api.Services.GetRequiredService<MaintenanceJobs>().ReconcileLedgerAsync(CancellationToken.None);
        Assert.Equal(JobStatuses.Cancelled, (await ledger.GetAsync(id, CancellationToken.None))!.Value.Row.Status);
    }

    [Fact]
    public async Task Reconcile_ends_a_ledger_row_whose_job_is_gone_from_redis_failed_lost()
    {
        var store = serving.Api.Services.GetRequiredService<RedisJobStore>();
        var ledger = serving.Api.Services.GetRequiredService<Async.Serving.Api.Ledger.LedgerStore>();
        var id = await StoreJobAsync(store, "resnet18@1", worker: "w-gone", attempts: 1);
        await LedgerTests.WaitForRowAsync(serving.Api, id, JobStatuses.Running);
        // Redis lost the job (a crash within its last second, or its record expired) and the row aged.
        var redis = serving.Api.Services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>().GetDatabase();
        await redis.KeyDeleteAsync([RedisJobStore.JobKey(id), RedisJobStore.InputKey(id)]);
        await AgeLedgerRowAsync(id);

        await serving.Api.Services.GetRequiredService<MaintenanceJobs>().ReconcileLedgerAsync(CancellationToken.None);
        var (row, events) = (await ledger.GetAsync(id, CancellationToken.None))!.Value;
        Assert.Equal(JobStatuses.Failed, row.Status);
        Assert.Equal("lost", row.ErrorCode);
        Assert.NotNull(row.CompletedAt);
        Assert.Equal(JobStatuses.Failed, events[^1].Status);
    }

    /// <summary>Makes a job's ledger row look untouched for two minutes, as the reconcile job looks for.</summary>
    private async Task AgeLedgerRowAsync(string id)
    {
        await using var age = serving.Api.Services.GetRequiredService<Npgsql.NpgsqlDataSource>().CreateCommand(
            "UPDATE job_ledger SET updated_at = now() - interval '2 minutes' WHERE job_id = $1");
        age.Parameters.Add(new Npgsql.NpgsqlParameter<string> { TypedValue = id });
        await age.ExecuteNonQueryAsync();
    }

    [Fact]
    public void The_maintenance_jobs_are_scheduled_as_recurring_jobs_on_the_maintenance_queue()
    {
        var storage = serving.Api.Services.GetRequiredService<Hangfire.JobStorage>();
        using var connection = storage.GetConnection();
        var recurring = Hangfire.Storage.StorageConnectionExtensions.GetRecurringJobs(connection)
            .Where(j => j.Id.StartsWith("maintenance-", StringComparison.Ordinal)).ToList();
        Assert.Equal(
            ["maintenance-expire-queued", "maintenance-fail-lost", "maintenance-purge-ledger", "maintenance-reconcile-ledger", "maintenance-sweep-blobs"],
            recurring.Select(j => j.Id).Order(StringComparer.Ordinal));
        Assert.All(recurring, j => Assert.Equal(MaintenanceExtensions.Queue, j.Job.Queue));
        Assert.All(recurring, j => Assert.Equal("* * * * *", j.Cron));
    }

    [Fact]
    public async Task Maintenance_successes_stay_out_of_the_succeeded_list_where_webhook_deliveries_stay()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var suffix = Guid.NewGuid().ToString("N")[..8];
        // A Hangfire schema of its own, so the succeeded list holds this host's jobs only.
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Hangfire:RunServer"] = "true",
            ["Serving:Hangfire:SchemaName"] = "hangfire_maint_" + suffix,
            ["Serving:Security:AllowPrivateNetworks"] = "true",
            ["Serving:Auth:DevelopmentTenant"] = "maint-" + suffix,
        });
        using var client = serving.Client(api);
        var recurring = api.Services.GetRequiredService<Hangfire.IRecurringJobManagerV2>();
        string[] maintenance =
        [
            .. new[] { "maintenance-expire-queued", "maintenance-fail-lost", "maintenance-reconcile-ledger", "maintenance-purge-ledger", "maintenance-sweep-blobs", "batches-sweep" }
                .Select(id => recurring.TriggerJob(id) ?? throw new InvalidOperationException($"{id} is not scheduled")),
        ];
        var test = await client.PostAsJsonAsync("/v1/webhooks/test", new { url = receiver.NewUrl() });
        await Problems.AssertStatusAsync(test, HttpStatusCode.Accepted);
        var delivery = (await test.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("hangfire_job").GetString()!;

        var monitoring = api.Services.GetRequiredService<Hangfire.JobStorage>().GetMonitoringApi();
        var deadline = DateTime.UtcNow + ServingFixture.JobWait;
        string State(string id) => monitoring.JobDetails(id).History[0].StateName;
        while (maintenance.Append(delivery).Any(id => State(id) is "Enqueued" or "Processing" or "Scheduled"))
        {
            Assert.True(DateTime.UtcNow < deadline, "the Hangfire jobs did not finish in time");
            await Task.Delay(100);
        }

        Assert.All(maintenance, id => Assert.Equal(MaintenanceDoneState.StateName, State(id)));
        Assert.Equal("Succeeded", State(delivery));
        var succeeded = monitoring.SucceededJobs(0, 100).Select(j => j.Key).ToList();
        Assert.Contains(delivery, succeeded);
        Assert.Empty(succeeded.Intersect(maintenance));
        Assert.Equal(1, monitoring.SucceededListCount());

        // The dashboard still shows a maintenance run's page, with its state and result.
        using var dashboard = await DashboardTests.SignInAsync(api, serving.DashboardPassword);
        var page = await dashboard.GetAsync($"/hangfire/jobs/details/{maintenance[0]}");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains(MaintenanceDoneState.StateName, await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    /// <summary>A job stored as a submit stores it (with a tiny input), then started <paramref name="attempts"/> times by <paramref name="worker"/>.</summary>
    private async Task<string> StoreJobAsync(RedisJobStore store, string model, string worker, int attempts)
    {
        var job = new JobRecord
        {
            Id = RedisJobStore.NewJobId(),
            TenantId = serving.Tenant,
            Status = JobStatuses.Queued,
            Pipeline = "image.embed",
            Model = model,
            CreatedAt = DateTimeOffset.UtcNow,
        };
        await store.CreateAsync(job, new byte[] { 1, 2, 3 });
        for (var i = 0; i < attempts; i++)
        {
            Assert.True((await store.TryStartAsync(job.Id, worker)).Started);
        }

        return job.Id;
    }
}
