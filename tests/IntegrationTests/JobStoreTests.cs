using System.Security.Cryptography;
using Async.Serving.Blobs;
using Async.Serving.Jobs;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// Every script of the job store, on the test run's single Redis server and on its own Redis
/// Cluster of three masters (started by scripts/test.sh, SERVING_TEST_REDIS_CLUSTER): a script that
/// touched an undeclared key, or keys of two slots, fails on the cluster with CROSSSLOT.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class JobStoreTests
{
    public static TheoryData<string> Servers => ["single", "cluster"];

    internal static ConnectionMultiplexer Connect(string server)
    {
        var configuration = server == "cluster"
            ? Environment.GetEnvironmentVariable("SERVING_TEST_REDIS_CLUSTER") is { Length: > 0 } cluster
                ? cluster
                : throw new InvalidOperationException("SERVING_TEST_REDIS_CLUSTER is not set: run the tests through scripts/test.sh, which starts a Redis Cluster for them.")
            : Environment.GetEnvironmentVariable("ConnectionStrings__Redis") ?? "127.0.0.1:6379";
        return ConnectionMultiplexer.Connect(configuration);
    }

    private static RedisJobStore Store(IConnectionMultiplexer redis) => new(redis, Options.Create(new JobStoreOptions()), TimeProvider.System);

    private static async Task<JobRecord> CreateAsync(RedisJobStore store, string tenant, string? webhookEvents = "\"started\",\"progress\",\"completed\"", string model = "resnet18@1")
    {
        var id = RedisJobStore.NewJobId();
        var job = new JobRecord
        {
            Id = id,
            TenantId = tenant,
            Status = JobStatuses.Queued,
            Pipeline = "image.embed",
            Model = model,
            // The instant in the id (UUIDv7), which the store's queued-by-model index reads back: a clock
            // read after making the id may be a millisecond later.
            CreatedAt = RedisJobStore.CreatedAtOf(id)!.Value,
            ExpiresAt = DateTimeOffset.UtcNow.AddHours(1),
            WebhookJson = webhookEvents is null ? null : $$"""{"url":"https://example.com/h","events":[{{webhookEvents}}]}""",
        };
        await store.CreateAsync(job, new byte[] { 1, 2, 3 });
        return job;
    }

    [Theory]
    [MemberData(nameof(Servers))]
    public async Task Every_transition_runs_with_its_ledger_entry_and_event(string server)
    {
        using var redis = Connect(server);
        var store = Store(redis);
        var tenant = "store-" + Guid.NewGuid().ToString("N")[..8];

        // Succeeded, with progress on the way.
        var done = await CreateAsync(store, tenant);
        var start = await store.TryStartAsync(done.Id, "w1");
        Assert.True(start.Started);
        Assert.Equal([1, 2, 3], start.Input);
        Assert.True(await store.SetProgressAsync(done.Id, 0.5, "w1"));
        Assert.False(await store.SetProgressAsync(done.Id, 0.6, "w2"));
        Assert.True(await store.CompleteAsync(done.Id, """{"dims":1}""", 7));
        Assert.False(await store.CompleteAsync(done.Id, """{"dims":1}""", 7));
        var read = await store.GetAsync(done.Id);
        Assert.Equal(JobStatuses.Succeeded, read!.Status);
        Assert.Equal("""{"dims":1}""", read.OutputJson);

        // Cancelled while queued; cancel requested while running, then found by the redelivery.
        var queued = await CreateAsync(store, tenant);
        Assert.Equal(CancelOutcome.Cancelled, await store.CancelAsync(queued.Id));
        Assert.Equal(CancelOutcome.AlreadyTerminal, await store.CancelAsync(queued.Id));
        var running = await CreateAsync(store, tenant);
        Assert.True((await store.TryStartAsync(running.Id, "w1")).Started);
        Assert.Equal(CancelOutcome.Requested, await store.CancelAsync(running.Id));
        Assert.True((await store.TryStartAsync(running.Id, "w2")).CancelledNow);

        // Expired; failed; lost (only by the worker that holds it); dead-lettered, requeued and run again.
        var expired = await CreateAsync(store, tenant);
        Assert.True(await store.ExpireAsync(expired.Id));
        var failed = await CreateAsync(store, tenant, webhookEvents: null);
        Assert.True(await store.FailAsync(failed.Id, "inference_failed", "no"));
        var lost = await CreateAsync(store, tenant);
        Assert.True((await store.TryStartAsync(lost.Id, "w1")).Started);
        Assert.False(await store.FailLostAsync(lost.Id, "w9", "worker_lost", "gone"));
        Assert.True(await store.FailLostAsync(lost.Id, "w1", "worker_lost", "gone"));
        var dead = await CreateAsync(store, tenant);
        Assert.True(await store.FailDeadLetteredAsync(dead.Id, "dead_letter", "moved to _error"));
        Assert.Equal(RequeueOutcome.Requeued, await store.RequeueAsync(dead.Id));
        Assert.Equal(RequeueOutcome.NotFailed, await store.RequeueAsync(dead.Id));
        var again = await store.TryStartAsync(dead.Id, "w1");
        Assert.Equal((true, 1, 3), (again.Started, again.Attempt, again.Input!.Length));
        Assert.Equal(RequeueOutcome.InputGone, await store.RequeueAsync(lost.Id));

        // Removed after a failed publish.
        var orphan = await CreateAsync(store, tenant);
        await store.DeleteAsync(orphan.Id, tenant);
        Assert.Null(await store.GetAsync(orphan.Id));

        // The tenant's list, newest first, across shards (and, on the cluster, across masters).
        // (Ids made within one millisecond are ordered by their random part, so the order is checked, not the sequence.)
        var (jobs, _) = await store.ListAsync(tenant, null, 100, _ => true);
        Assert.Equal(new[] { dead, lost, failed, expired, running, queued, done }.Select(j => j.Id).Order(StringComparer.Ordinal), jobs.Select(j => j.Id).Order(StringComparer.Ordinal));
        Assert.Equal(jobs.Select(j => j.Id).OrderDescending(StringComparer.Ordinal), jobs.Select(j => j.Id));
        Assert.Equal(JobStatuses.Running, jobs.Single(j => j.Id == dead.Id).Status);
        Assert.Equal(JobStatuses.Succeeded, jobs.Single(j => j.Id == done.Id).Status);

        // The events, read the way the relay reads them: every shard's stream, in a group of the test's own.
        var mine = jobs.Select(j => j.Id).ToHashSet();
        var group = new RedisStreamGroup(redis.GetDatabase(), [.. RedisJobStore.Shards.Select(RedisJobStore.EventStream)], "test-" + Guid.NewGuid().ToString("N"), TimeSpan.FromMinutes(5), TimeProvider.System);
        var events = new List<StreamEntryRef>();
        for (IReadOnlyList<StreamEntryRef> batch; (batch = await group.ReadAsync(500)).Count > 0;)
        {
            events.AddRange(batch);
            await group.AckAsync(batch);
        }

        string[] Types(JobRecord job) => [.. events.Where(e => e.Entry["id"] == job.Id).Select(e => $"{e.Entry["type"]}:{e.Entry["status"]}")];
        Assert.Equal(["job.started:running", "job.progress:running", "job.completed:succeeded"], Types(done));
        Assert.Equal(["job.completed:cancelled"], Types(queued));
        Assert.Equal(["job.started:running", "job.completed:cancelled"], Types(running));
        Assert.Equal(["job.completed:expired"], Types(expired));
        Assert.Empty(Types(failed)); // no webhook, no event
        Assert.Equal(["job.started:running", "job.completed:failed"], Types(lost));
        Assert.Equal(["job.completed:failed", "job.started:running"], Types(dead));
        Assert.All(events.Where(e => mine.Contains(e.Entry["id"].ToString())), e => Assert.Equal(RedisJobStore.EventStream(RedisJobStore.ShardOf(e.Entry["id"].ToString())), e.Stream));
    }

    [Theory]
    [MemberData(nameof(Servers))]
    public async Task A_stopped_consumer_s_entries_are_claimed_and_then_the_consumer_is_deleted(string server)
    {
        using var redis = Connect(server);
        var db = redis.GetDatabase();
        RedisKey stream = "test-stream:{" + Guid.NewGuid().ToString("N") + "}";
        const string Group = "readers";
        var claimIdle = TimeSpan.FromMilliseconds(100);
        try
        {
            await db.StreamAddAsync(stream, "n", 1);
            await db.StreamAddAsync(stream, "n", 2);
            // Two processes that stopped: one acknowledged what it read, one did not (it died mid-way).
            var tidy = new RedisStreamGroup(db, [stream], Group, claimIdle, TimeProvider.System);
            var first = await tidy.ReadAsync(1);
            await tidy.AckAsync(first);
            var died = new RedisStreamGroup(db, [stream], Group, claimIdle, TimeProvider.System);
            var unacknowledged = Assert.Single(await died.ReadAsync(1));
            Assert.Equal(2, (await db.StreamConsumerInfoAsync(stream, Group)).Length);

            await Task.Delay(claimIdle * 10 + TimeSpan.FromMilliseconds(500));
            var survivor = new RedisStreamGroup(db, [stream], Group, claimIdle, TimeProvider.System);
            var claimed = Assert.Single(await survivor.ReadAsync(10));
            Assert.Equal(unacknowledged.Entry.Id, claimed.Entry.Id);

            // Both stopped consumers are gone (the dead one's entry is the survivor's now); only the survivor is left.
            var left = Assert.Single(await db.StreamConsumerInfoAsync(stream, Group));
            Assert.Equal(1, left.PendingMessageCount);
            await survivor.AckAsync([claimed]);
        }
        finally
        {
            await db.KeyDeleteAsync(stream);
        }
    }

    [Theory]
    [MemberData(nameof(Servers))]
    public async Task An_output_that_is_a_blob_reference_is_not_cached_and_a_json_output_is(string server)
    {
        // The finish script tells a reference by BlobReference's prefix: were the two to differ, the
        // reference would be cached (and outlive its blob).
        using var redis = Connect(server);
        var store = Store(redis);
        var tenant = "store-" + Guid.NewGuid().ToString("N")[..8];

        async Task<string> FinishLeaderAsync(Func<string, string> output)
        {
            var ticket = new CacheTicket(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)), TimeSpan.FromMinutes(5), 1 << 20, 1 << 20, SingleFlight: true);
            var job = new JobRecord
            {
                Id = RedisJobStore.NewJobIdIn(ticket.Key),
                TenantId = tenant,
                Status = JobStatuses.Queued,
                Pipeline = "image.embed",
                Model = "resnet18@1",
                CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()),
                ExpiresAt = DateTimeOffset.UtcNow.AddHours(1),
            };
            Assert.IsType<CachedCreate.Lead>(await store.CreateCachedAsync(job, [1, 2, 3], ticket, []));
            Assert.True((await store.TryStartAsync(job.Id, "w1")).Started);
            Assert.True(await store.CompleteAsync(job.Id, output(job.Id), 7));
            return ticket.Key;
        }

        Assert.False(await store.CacheHoldsAsync(await FinishLeaderAsync(id => BlobReference.EncodeText(BlobNames.Output(id)))));
        Assert.True(await store.CacheHoldsAsync(await FinishLeaderAsync(_ => """{"dims":1}""")));
    }

    [Theory]
    [MemberData(nameof(Servers))]
    public async Task Queued_jobs_by_model_follow_every_state_change_and_know_the_oldest(string server)
    {
        using var redis = Connect(server);
        var store = Store(redis);
        var tenant = "store-" + Guid.NewGuid().ToString("N")[..8];
        var model = "depth" + Guid.NewGuid().ToString("N")[..8] + "@1";
        var other = model.Replace("@1", "@10", StringComparison.Ordinal); // a longer id with the same prefix is another model
        async Task<(long Queued, DateTimeOffset? Oldest)> ReadAsync() => (await store.QueuedByModelAsync([model, other]))[model];

        Assert.Equal((0L, (DateTimeOffset?)null), await ReadAsync());
        var jobs = new List<JobRecord>();
        for (var i = 0; i < 20; i++)
        {
            jobs.Add(await CreateAsync(store, tenant, model: model)); // spread over the shards by their ids
        }

        await CreateAsync(store, tenant, model: other);
        var (queued, oldest) = await ReadAsync();
        Assert.Equal(20, queued);
        Assert.Equal(jobs.Min(j => j.CreatedAt), oldest);
        Assert.Equal(1, (await store.QueuedByModelAsync([other]))[other].Queued);

        // Started, cancelled, expired, failed, removed: no longer queued. Requeued after a dead letter: queued again.
        var first = jobs.OrderBy(j => j.Id, StringComparer.Ordinal).First();
        var others = jobs.Where(j => j != first).ToList(); // the started job is none of the four below
        Assert.True((await store.TryStartAsync(first.Id, "w1")).Started);
        Assert.Equal(CancelOutcome.Cancelled, await store.CancelAsync(others[0].Id));
        Assert.True(await store.ExpireAsync(others[1].Id));
        Assert.True(await store.FailDeadLetteredAsync(others[2].Id, "dead_letter", "moved to _error"));
        await store.DeleteAsync(others[3].Id, tenant);
        Assert.Equal(15, (await ReadAsync()).Queued);
        Assert.Equal(RequeueOutcome.Requeued, await store.RequeueAsync(others[2].Id));
        (queued, oldest) = await ReadAsync();
        Assert.Equal(16, queued);
        Assert.Equal(jobs.Where(j => j != first && j != others[0] && j != others[1] && j != others[3]).Min(j => j.CreatedAt), oldest);

        // An upgrade: a job queued before the index existed is added to it, once.
        var old = await CreateAsync(store, tenant, model: model);
        var db = redis.GetDatabase();
        await db.SortedSetRemoveAsync(RedisJobStore.QueuedByModel(RedisJobStore.ShardOf(old.Id)), model + "|" + old.Id);
        Assert.Equal(16, (await ReadAsync()).Queued);
        await db.KeyDeleteAsync(RedisJobStore.QueuedByModelBackfilled);
        Assert.InRange(await store.BackfillQueuedByModelAsync(CancellationToken.None), 1, int.MaxValue);
        Assert.Equal(17, (await ReadAsync()).Queued);
        Assert.Equal(0, await store.BackfillQueuedByModelAsync(CancellationToken.None));

        var (running, oldestStart) = await store.RunningAsync();
        Assert.True(running >= 1);
        Assert.NotNull(oldestStart);
    }

    [Fact]
    public async Task On_the_cluster_the_shards_spread_over_every_master_and_a_jobs_keys_share_one_slot()
    {
        using var redis = Connect("cluster");
        var masters = RedisJobStore.Shards
            .Select(shard => redis.GetServer(redis.GetEndPoints()[0]).ClusterConfiguration!.GetBySlot(RedisJobStore.LedgerStream(shard))!.EndPoint)
            .Distinct()
            .Count();
        Assert.Equal(3, masters);

        var id = RedisJobStore.NewJobId();
        var shard = RedisJobStore.ShardOf(id);
        var slots = new[] { RedisJobStore.JobKey(id), RedisJobStore.InputKey(id), RedisJobStore.ResultKey(id), RedisJobStore.LedgerStream(shard),
            RedisJobStore.EventStream(shard), RedisJobStore.QueuedByExpiry(shard), RedisJobStore.RunningJobs(shard), RedisJobStore.QueuedByModel(shard) }.Select(k => redis.HashSlot(k)).Distinct();
        Assert.Single(slots);
    }

    [Fact]
    public async Task A_store_of_the_first_layout_is_moved_keeping_its_jobs()
    {
        using var redis = Connect("single");
        var db = redis.GetDatabase();
        var store = Store(redis);
        var id = RedisJobStore.NewJobId();
        var tenant = "legacy-" + Guid.NewGuid().ToString("N")[..8];
        var expires = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeMilliseconds();

        // What the first wave wrote for a queued job, with its TTLs.
        await db.HashSetAsync($"job:{id}", [new("id", id), new("tenant", tenant), new("status", "queued"), new("pipeline", "image.embed"),
            new("model", "resnet18@1"), new("created_at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), new("progress", 0), new("attempts", 0)]);
        await db.KeyExpireAsync($"job:{id}", TimeSpan.FromDays(15));
        await db.StringSetAsync($"input:{id}", new byte[] { 9, 8, 7 }, TimeSpan.FromDays(8));
        await db.SortedSetAddAsync("queued-by-expiry", id, expires);
        await db.StreamAddAsync("ledger", [new("id", id), new("status", "queued"), new("at", 1)]);
        await db.KeyDeleteAsync(JobStoreLayoutMigration.Marker);

        var migration = new JobStoreLayoutMigration(redis, Microsoft.Extensions.Logging.Abstractions.NullLogger<JobStoreLayoutMigration>.Instance);
        Assert.True(await migration.MigrateAsync(CancellationToken.None) >= 4);
        Assert.Equal(0, await migration.MigrateAsync(CancellationToken.None)); // done once

        Assert.False(await db.KeyExistsAsync($"job:{id}"));
        Assert.InRange((await db.KeyTimeToLiveAsync(RedisJobStore.JobKey(id)))!.Value, TimeSpan.FromDays(14), TimeSpan.FromDays(15));
        Assert.Equal(expires, await db.SortedSetScoreAsync(RedisJobStore.QueuedByExpiry(RedisJobStore.ShardOf(id)), id));
        Assert.Contains(await db.StreamRangeAsync(RedisJobStore.LedgerStream(RedisJobStore.ShardOf(id))), e => e["id"] == id);
        var start = await store.TryStartAsync(id, "w1");
        Assert.True(start.Started);
        Assert.Equal([9, 8, 7], start.Input);
    }
}
