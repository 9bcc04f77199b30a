using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Async.Serving.Api.Maintenance;
using Async.Serving.Blobs;
using Async.Serving.Jobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// Large inputs and outputs in the blob store (docs/blobs.md), against the real Redis, broker and
/// worker: the job keeps a reference of a few bytes, the worker reads the same bytes, and every way a
/// job ends (or never gets made) leaves no blob behind.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class BlobStoreTests(ServingFixture serving)
{
    /// <summary>A threshold every test image passes, so each goes to the blob store.</summary>
    private const string SmallThreshold = "1024";

    [Fact]
    public async Task A_large_input_waits_in_the_blob_store_with_a_small_job_and_the_worker_reads_the_same_bytes()
    {
        using var models = new PrivateModels(); // no worker serves it until this test starts one
        using var root = new BlobRoot();
        await using var api = serving.CreateApi(root.Settings(models));
        using var client = serving.Client(api);
        var image = TestImages.Scene(901, 320, 240);
        Assert.True(image.Length > 4 * 1024);
        var id = await SubmitMultipartAsync(client, models.Name, image);

        // Queued: the job hash references the blob (until the input's retention ends) and there is no
        // input key; the blob store holds the bytes.
        var db = Redis(api);
        Assert.False(await db.KeyExistsAsync(RedisJobStore.InputKey(id)));
        var created = (long)await db.HashGetAsync(RedisJobStore.JobKey(id), "created_at");
        var retention = api.Services.GetRequiredService<IOptions<JobStoreOptions>>().Value.InputRetention;
        Assert.Equal(created + (long)retention.TotalMilliseconds, (long)await db.HashGetAsync(RedisJobStore.JobKey(id), "input_blob"));
        var hashBytes = (long)await db.ExecuteAsync("MEMORY", "USAGE", RedisJobStore.JobKey(id).ToString(), "SAMPLES", 0);
        Assert.True(hashBytes < 640, $"job hash {hashBytes} B");
        Assert.Equal(image.Length, (long)await db.HashGetAsync(RedisJobStore.JobKey(id), "input_bytes"));
        var file = BlobPath(api, "inputs/" + id);
        Assert.Equal(SHA256.HashData(image), SHA256.HashData(await File.ReadAllBytesAsync(file)));

        // A worker for the model, whose outputs go to the blob store too (an embedding is ~10 KB).
        using var worker = ServingFixture.BuildWorker(models.Path, root.Settings(models));
        await worker.StartAsync();
        try
        {
            var job = await ServingFixture.WaitForTerminalAsync(client, id);
            Assert.Equal("succeeded", job.GetProperty("status").GetString());

            // The same bytes: the embedding equals that of the same image sent inline to resnet18 (the same weights).
            using var main = serving.Client();
            var inline = await ServingFixture.WaitForTerminalAsync(main, await SubmitMultipartAsync(main, "resnet18", image));
            Assert.Equal(512, Embedding(job).Length);
            Assert.All(Embedding(inline).Zip(Embedding(job)), pair => Assert.Equal(pair.First, pair.Second, 1e-4f));

            // The output is a reference in Redis and whole through the API; the input blob went with the job's end.
            Assert.StartsWith("blob:outputs/", (string?)await db.StringGetAsync(RedisJobStore.ResultKey(id)));
            Assert.True(File.Exists(BlobPath(api, "outputs/" + id)));
            Assert.False(File.Exists(file));

            // The result's TTL passes (its key is gone): the sweep deletes the output blob.
            await db.KeyDeleteAsync(RedisJobStore.ResultKey(id));
            Age(BlobPath(api, "outputs/" + id));
            await api.Services.GetRequiredService<MaintenanceJobs>().SweepBlobsAsync(CancellationToken.None);
            Assert.False(File.Exists(BlobPath(api, "outputs/" + id)));
            Assert.False((await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}")).TryGetProperty("output", out var gone) && gone.ValueKind != JsonValueKind.Null);
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await worker.StopAsync(stop.Token);
        }
    }

    [Fact]
    public async Task Cancelling_expiring_deleting_or_refusing_a_job_removes_its_input_blob()
    {
        using var models = new PrivateModels();
        using var root = new BlobRoot();
        await using var api = serving.CreateApi(root.Settings(models));
        using var client = serving.Client(api);

        var cancelled = await SubmitMultipartAsync(client, models.Name, TestImages.Scene(911, 320, 240));
        Assert.True(File.Exists(BlobPath(api, "inputs/" + cancelled)));
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync($"/v1/jobs/{cancelled}/cancel", null)).StatusCode);
        Assert.False(File.Exists(BlobPath(api, "inputs/" + cancelled)));

        var expiring = await SubmitMultipartAsync(client, models.Name, TestImages.Scene(912, 320, 240), ttlSeconds: 1);
        Assert.True(File.Exists(BlobPath(api, "inputs/" + expiring)));
        await Task.Delay(TimeSpan.FromSeconds(1.2));
        await api.Services.GetRequiredService<MaintenanceJobs>().ExpireQueuedAsync(CancellationToken.None);
        Assert.Equal("expired", (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{expiring}")).GetProperty("status").GetString());
        Assert.False(File.Exists(BlobPath(api, "inputs/" + expiring)));

        var deleted = await SubmitMultipartAsync(client, models.Name, TestImages.Scene(913, 320, 240));
        await api.Services.GetRequiredService<RedisJobStore>().DeleteAsync(deleted, serving.Tenant);
        Assert.False(File.Exists(BlobPath(api, "inputs/" + deleted)));

        // Refused after the file was staged (an unknown model named in a request part after the file): nothing stays.
        using var form = new MultipartFormDataContent();
        form.Add(new ByteArrayContent(TestImages.Scene(914, 320, 240)) { Headers = { ContentType = new MediaTypeHeaderValue("image/jpeg") } }, "file", "a.jpg");
        form.Add(new StringContent("""{"pipeline":"image.embed","model":"no-such-model"}"""), "request");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await client.PostAsync("/v1/jobs", form)).StatusCode);
        Assert.Empty(Files(api, "uploads"));
    }

    [Fact]
    public async Task A_job_whose_input_key_holds_the_reference_as_before_the_input_blob_field_still_runs()
    {
        using var models = new PrivateModels();
        using var root = new BlobRoot();
        await using var api = serving.CreateApi(root.Settings(models));
        using var client = serving.Client(api);
        var db = Redis(api);
        var sweep = api.Services.GetRequiredService<MaintenanceJobs>();

        // Two jobs put back into the layout of the previous version: the reference in the input key (with
        // its TTL), and the fields that version stored; one runs, one is cancelled.
        async Task<string> OldLayoutAsync(int seed)
        {
            var id = await SubmitMultipartAsync(client, models.Name, TestImages.Scene(seed, 320, 240));
            await db.HashDeleteAsync(RedisJobStore.JobKey(id), "input_blob");
            await db.HashSetAsync(RedisJobStore.JobKey(id), [new("id", id), new("progress", 0), new("attempts", 0), new("priority", "normal")]);
            await db.StringSetAsync(RedisJobStore.InputKey(id), "blob:inputs/" + id, TimeSpan.FromDays(8));
            return id;
        }

        var running = await OldLayoutAsync(931);
        var cancelled = await OldLayoutAsync(932);
        var fresh = await SubmitMultipartAsync(client, models.Name, TestImages.Scene(933, 320, 240));

        // The sweep keeps the blobs of both layouts while their jobs reference them.
        foreach (var id in new[] { running, cancelled, fresh })
        {
            Age(BlobPath(api, "inputs/" + id));
        }

        await sweep.SweepBlobsAsync(CancellationToken.None);
        Assert.All(new[] { running, cancelled, fresh }, id => Assert.True(File.Exists(BlobPath(api, "inputs/" + id)), id));

        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync($"/v1/jobs/{cancelled}/cancel", null)).StatusCode);
        Assert.False(await db.KeyExistsAsync(RedisJobStore.InputKey(cancelled)));
        Assert.False(File.Exists(BlobPath(api, "inputs/" + cancelled)));

        using var worker = ServingFixture.BuildWorker(models.Path, root.Settings(models));
        await worker.StartAsync();
        try
        {
            foreach (var id in new[] { running, fresh })
            {
                var job = await ServingFixture.WaitForTerminalAsync(client, id);
                Assert.Equal("succeeded", job.GetProperty("status").GetString());
                Assert.Equal(512, Embedding(job).Length);
                Assert.Equal(id, job.GetProperty("id").GetString());
                Assert.False(await db.KeyExistsAsync(RedisJobStore.InputKey(id)));
                Assert.False(await db.HashExistsAsync(RedisJobStore.JobKey(id), "input_blob"));
                Assert.False(File.Exists(BlobPath(api, "inputs/" + id)));
            }

            // Both outputs are the same embedding of the same picture sent either way.
            var again = await ServingFixture.WaitForTerminalAsync(client, await SubmitMultipartAsync(client, models.Name, TestImages.Scene(931, 320, 240)));
            Assert.All(Embedding(again).Zip(Embedding(await ServingFixture.WaitForTerminalAsync(client, running))), pair => Assert.Equal(pair.First, pair.Second, 1e-4f));
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await worker.StopAsync(stop.Token);
        }
    }

    [Fact]
    public async Task An_input_blob_past_its_retention_is_gone_for_the_worker_a_requeue_and_the_sweep()
    {
        using var models = new PrivateModels();
        using var root = new BlobRoot();
        await using var api = serving.CreateApi(root.Settings(models));
        using var client = serving.Client(api);
        var db = Redis(api);
        var store = api.Services.GetRequiredService<RedisJobStore>();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        // Dead-lettered jobs keep their input for an operator's requeue, while it is retained.
        var kept = await SubmitMultipartAsync(client, models.Name, TestImages.Scene(941, 320, 240));
        Assert.True(await store.FailDeadLetteredAsync(kept, "dead_lettered", "test"));
        Assert.True(await db.HashExistsAsync(RedisJobStore.JobKey(kept), "input_blob"));
        Assert.Equal(RequeueOutcome.Requeued, await store.RequeueAsync(kept));
        var started = await store.TryStartAsync(kept);
        Assert.Equal("blob:inputs/" + kept, Encoding.ASCII.GetString(started.Input!));
        Assert.True(await store.FailAsync(kept, "test", "done"));
        Assert.False(await db.HashExistsAsync(RedisJobStore.JobKey(kept), "input_blob"));

        var lapsed = await SubmitMultipartAsync(client, models.Name, TestImages.Scene(942, 320, 240));
        Assert.True(await store.FailDeadLetteredAsync(lapsed, "dead_lettered", "test"));
        await db.HashSetAsync(RedisJobStore.JobKey(lapsed), "input_blob", now - 1000);
        Assert.Equal(RequeueOutcome.InputGone, await store.RequeueAsync(lapsed));

        var queued = await SubmitMultipartAsync(client, models.Name, TestImages.Scene(943, 320, 240));
        await db.HashSetAsync(RedisJobStore.JobKey(queued), "input_blob", now - 1000);
        Age(BlobPath(api, "inputs/" + lapsed));
        Age(BlobPath(api, "inputs/" + queued));
        await api.Services.GetRequiredService<MaintenanceJobs>().SweepBlobsAsync(CancellationToken.None);
        Assert.False(File.Exists(BlobPath(api, "inputs/" + lapsed)));
        Assert.False(File.Exists(BlobPath(api, "inputs/" + queued)));
        var start = await store.TryStartAsync(queued);
        Assert.True(start.Started);
        Assert.Null(start.Input);
        await store.FailAsync(queued, "test", "done");
    }

    [Fact]
    public async Task The_sweep_deletes_orphans_older_than_their_age_and_keeps_what_a_job_references()
    {
        using var models = new PrivateModels();
        using var root = new BlobRoot();
        await using var api = serving.CreateApi(root.Settings(models));
        using var client = serving.Client(api);
        var blobs = api.Services.GetRequiredService<IBlobStore>();
        async Task<string> WriteAsync(string name)
        {
            var writer = await blobs.OpenWriteAsync(name, CancellationToken.None);
            await using (writer)
            {
                await writer.WriteAsync("orphan"u8.ToArray());
                await writer.CommitAsync(CancellationToken.None);
            }

            return BlobPath(api, name);
        }

        var queued = await SubmitMultipartAsync(client, models.Name, TestImages.Scene(921, 320, 240));
        var referenced = BlobPath(api, "inputs/" + queued);
        var upload = await WriteAsync(BlobNames.NewUpload());          // a submit that died before its job was stored
        var input = await WriteAsync(BlobNames.Input(RedisJobStore.NewJobId()));   // moved to its job's name, job never stored
        var output = await WriteAsync(BlobNames.Output(RedisJobStore.NewJobId())); // a result long expired
        var young = await WriteAsync(BlobNames.Input(RedisJobStore.NewJobId()));   // a submit in progress
        var partial = Path.Combine(api.Services.GetRequiredService<FileSystemBlobStore>().Root, ".partial", "dead.part");
        await File.WriteAllTextAsync(partial, "half");
        foreach (var path in new[] { referenced, upload, input, output, partial })
        {
            Age(path);
        }

        Assert.True(await api.Services.GetRequiredService<MaintenanceJobs>().SweepBlobsAsync(CancellationToken.None) >= 4);
        Assert.True(File.Exists(referenced));
        Assert.True(File.Exists(young));
        Assert.False(File.Exists(upload));
        Assert.False(File.Exists(input));
        Assert.False(File.Exists(output));
        Assert.False(File.Exists(partial));
        await client.PostAsync($"/v1/jobs/{queued}/cancel", null);
    }

    [Fact]
    public async Task A_name_or_a_stored_reference_cannot_reach_outside_the_root()
    {
        var root = Directory.CreateTempSubdirectory("blobs-root-");
        var outside = Path.Combine(root.Parent!.FullName, "outside-" + Guid.NewGuid().ToString("N"));
        await File.WriteAllTextAsync(outside, "secret");
        try
        {
            var store = new FileSystemBlobStore(Options.Create(new BlobOptions { Root = root.FullName }), TimeProvider.System);
            string[] attempts =
            [
                "../" + Path.GetFileName(outside), "inputs/../../" + Path.GetFileName(outside), outside, "/etc/passwd", "inputs/..", "..",
                "inputs/./x", "inputs\\..\\x", "inputs//x", "", "inputs/.hidden", "INPUTS/x", "inputs/x\0", "uploads/%2e%2e",
            ];
            foreach (var name in attempts)
            {
                Assert.False(BlobNames.IsValid(name), name);
                await Assert.ThrowsAsync<ArgumentException>(() => store.OpenReadAsync(name, CancellationToken.None));
                await Assert.ThrowsAsync<ArgumentException>(() => store.OpenWriteAsync(name, CancellationToken.None));
                await Assert.ThrowsAsync<ArgumentException>(() => store.DeleteAsync(name, CancellationToken.None));
                await Assert.ThrowsAsync<ArgumentException>(() => store.MoveAsync("inputs/a", name, CancellationToken.None));
                Assert.Null(BlobReference.Decode(Encoding.ASCII.GetBytes("blob:" + name)));
            }

            await Assert.ThrowsAsync<ArgumentException>(() => store.ListAsync("../", CancellationToken.None).GetAsyncEnumerator().MoveNextAsync().AsTask());
            Assert.Equal("secret", await File.ReadAllTextAsync(outside));
            Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(root.FullName, "*", SearchOption.AllDirectories), p => !p.Contains(".partial", StringComparison.Ordinal));

            // A job whose stored input pretends to be a reference outside the root: the worker reads it as bytes, which are no image.
            var store2 = serving.Api.Services.GetRequiredService<RedisJobStore>();
            var job = new JobRecord
            {
                Id = RedisJobStore.NewJobId(), TenantId = serving.Tenant, Status = JobStatuses.Queued, Pipeline = "image.embed", Model = "resnet18@1",
                CreatedAt = DateTimeOffset.UtcNow,
            };
            await store2.CreateAsync(job, Encoding.ASCII.GetBytes("blob:../../../../etc/passwd"));
            var sender = serving.Api.Services.GetRequiredService<Async.Serving.Api.Jobs.JobSender>();
            await sender.SendAsync(new RunInference
            {
                JobId = job.Id, TenantId = job.TenantId, Pipeline = job.Pipeline, Model = "resnet18", ModelVersion = "1",
                InputKey = RedisJobStore.InputKey(job.Id).ToString(), SubmittedAt = job.CreatedAt, TimeoutSeconds = 60,
            }, serving.Api.Services.GetRequiredService<Async.Serving.Models.ModelRepository>().Resolve("resnet18@1")!.LaneQueue(JobPriorities.Normal));
            using var client = serving.Client();
            var ended = await ServingFixture.WaitForTerminalAsync(client, job.Id);
            Assert.Equal("failed", ended.GetProperty("status").GetString());
            Assert.Equal("input_invalid", ended.GetProperty("error").GetProperty("code").GetString());
        }
        finally
        {
            File.Delete(outside);
            root.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task The_result_cache_keys_a_streamed_input_by_its_bytes_whether_inline_blob_or_fetched()
    {
        using var models = new PrivateModels(); // no worker: the first job stays queued, leading its key's flight
        using var root = new BlobRoot();
        await using var remote = await LocalImageServer.StartAsync();
        var settings = root.Settings(models);
        settings["Serving:Cache:Enabled"] = "true";
        settings["Serving:Security:AllowPrivateNetworks"] = "true";
        await using var blobApi = serving.CreateApi(settings);
        await using var inlineApi = serving.CreateApi(new Dictionary<string, string?>(settings) { ["Serving:Blobs:InlineThreshold"] = "262144" });
        using var inlineClient = serving.Client(inlineApi);
        using var blobClient = serving.Client(blobApi);

        var leader = await SubmitMultipartAsync(inlineClient, models.Name, remote.Image);
        Assert.False(File.Exists(BlobPath(blobApi, "inputs/" + leader)));
        var follower = await SubmitMultipartAsync(blobClient, models.Name, remote.Image);
        var fetched = await blobClient.PostAsJsonAsync("/v1/jobs", new { pipeline = "image.embed", model = models.Name, input = new { url = remote.Url("/image.jpg") } });
        await Problems.AssertStatusAsync(fetched, HttpStatusCode.Accepted);
        var fetchedId = (await fetched.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

        var store = blobApi.Services.GetRequiredService<RedisJobStore>();
        Assert.Equal(leader, (await store.GetAsync(follower))!.CacheLeader);
        Assert.Equal(leader, (await store.GetAsync(fetchedId))!.CacheLeader);
        Assert.True(File.Exists(BlobPath(blobApi, "inputs/" + follower)));
        Assert.True(File.Exists(BlobPath(blobApi, "inputs/" + fetchedId)));

        // A follower's hash holds its input's reference and what its message is made from, should its
        // leader end without an output; the leader's message was sent at submit, so it holds neither.
        var db = Redis(blobApi);
        Assert.True(await db.HashExistsAsync(RedisJobStore.JobKey(follower), "input_blob"));
        Assert.True(await db.HashExistsAsync(RedisJobStore.JobKey(follower), "queue"));
        Assert.False(await db.HashExistsAsync(RedisJobStore.JobKey(leader), "queue"));
        Assert.False(await db.HashExistsAsync(RedisJobStore.JobKey(leader), "input_blob"));
        Assert.True(await db.KeyExistsAsync(RedisJobStore.InputKey(leader)));
        foreach (var id in new[] { follower, fetchedId, leader })
        {
            await inlineClient.PostAsync($"/v1/jobs/{id}/cancel", null);
        }
    }

    private static async Task<string> SubmitMultipartAsync(HttpClient client, string model, byte[] image, int? ttlSeconds = null)
    {
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent(JsonSerializer.Serialize(new { pipeline = "image.embed", model, ttl_seconds = ttlSeconds })), "request");
        form.Add(new ByteArrayContent(image) { Headers = { ContentType = new MediaTypeHeaderValue("image/jpeg") } }, "file", "a.jpg");
        var response = await client.PostAsync("/v1/jobs", form);
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    private static float[] Embedding(JsonElement job) =>
        [.. job.GetProperty("output").GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle())];

    private static IDatabase Redis(Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactory<Program> api) =>
        api.Services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();

    private static string BlobPath(Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactory<Program> api, string name) =>
        api.Services.GetRequiredService<FileSystemBlobStore>().PathOf(name);

    private static IEnumerable<string> Files(Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactory<Program> api, string folder)
    {
        var path = Path.Combine(api.Services.GetRequiredService<FileSystemBlobStore>().Root, folder);
        return Directory.Exists(path) ? Directory.EnumerateFiles(path) : [];
    }

    /// <summary>A blob store folder of the test's own (its API and worker share it), removed at the end.</summary>
    private sealed class BlobRoot : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("blobs-test-").FullName;

        public Dictionary<string, string?> Settings(PrivateModels models) => new()
        {
            ["Serving:Models:Path"] = models.Path,
            ["Serving:Blobs:Root"] = Path,
            ["Serving:Blobs:InlineThreshold"] = SmallThreshold,
        };

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }

    /// <summary>Makes a blob look older than the sweep's <c>OrphanAge</c> (15 minutes by default).</summary>
    private static void Age(string path) => File.SetLastWriteTimeUtc(path, DateTime.UtcNow - TimeSpan.FromHours(1));
}
