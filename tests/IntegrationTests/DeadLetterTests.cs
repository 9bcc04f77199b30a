using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Async.Serving.Api.DeadLetters;
using Async.Serving.Jobs;
using Async.Serving.Messaging;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// Messages MassTransit gives up on end their jobs: a real worker meets a message it cannot
/// deserialize (→ <c>_error</c>) or one of a type it has no consumer for (→ <c>_skipped</c>), and the
/// sweeper ends the job <c>failed</c> with code <c>dead_letter</c>; an operator can requeue it.
/// The messages are written to the broker raw, as a buggy or older sender would.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class DeadLetterTests(ServingFixture serving)
{
    private static readonly TimeSpan Wait = ServingFixture.JobWait;

    private WebApplicationFactory<Program> CreateApi(PrivateModels models) => serving.CreateApi(new Dictionary<string, string?>
    {
        ["Serving:Models:Path"] = models.Path,
        ["Serving:DeadLetters:RunSweeper"] = "false", // the test sweeps, so it knows when
    });

    /// <summary>A queued job with its input, as the API stores it, but with no message sent for it yet.</summary>
    private async Task<string> CreateQueuedJobAsync(WebApplicationFactory<Program> api, PrivateModels models)
    {
        var id = RedisJobStore.NewJobId();
        await api.Services.GetRequiredService<RedisJobStore>().CreateAsync(new JobRecord
        {
            Id = id,
            TenantId = serving.Tenant,
            Status = JobStatuses.Queued,
            Pipeline = "image.embed",
            Model = models.Name + "@1",
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()),
        }, TestImages.Scene(95, 64, 48));
        return id;
    }

    private static string Envelope(string messageType, object message) => JsonSerializer.Serialize(new
    {
        messageId = Guid.NewGuid(),
        messageType = new[] { "urn:message:Async.Serving.Contracts:" + messageType },
        message,
    }, JsonSerializerOptions.Web);

    private object Message(string id, PrivateModels models, object submittedAt) => new
    {
        jobId = id,
        tenantId = serving.Tenant,
        pipeline = "image.embed",
        model = models.Name,
        modelVersion = "1",
        inputKey = RedisJobStore.InputKey(id).ToString(),
        submittedAt,
    };

    /// <summary>Writes <paramref name="body"/> to <paramref name="queue"/> as a MassTransit sender would (or, with another content type, would not).</summary>
    private static async Task SendRawAsync(IServiceProvider services, string queue, string body, string contentType = "application/vnd.masstransit+json")
    {
        await using var connection = await Factory(services).CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: null, passive: true);
        await channel.BasicPublishAsync(string.Empty, queue, mandatory: true, new BasicProperties { ContentType = contentType, Persistent = true }, Encoding.UTF8.GetBytes(body));
    }

    private static ConnectionFactory Factory(IServiceProvider services) =>
        services.GetRequiredService<IOptions<RabbitMqOptions>>().Value.ConnectionFactory("dead-letter-tests");

    /// <summary>Sweeps until the job has ended, at most <see cref="Wait"/> (MassTransit moves the message once the worker met it).</summary>
    private static async Task<JsonElement> SweepUntilEndedAsync(WebApplicationFactory<Program> api, HttpClient client, string id)
    {
        var sweeper = api.Services.GetRequiredService<DeadLetterSweeper>();
        var deadline = DateTime.UtcNow + Wait;
        while (true)
        {
            await sweeper.SweepAsync(CancellationToken.None);
            var job = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
            if (job.GetProperty("status").GetString() != "queued")
            {
                return job;
            }

            Assert.True(DateTime.UtcNow < deadline, $"job {id} still queued after {Wait.TotalSeconds} s of sweeps");
            await Task.Delay(200);
        }
    }

    /// <summary>Runs <paramref name="test"/> while a real worker serves <paramref name="models"/>.</summary>
    private static async Task WithWorkerAsync(PrivateModels models, Func<Task> test)
    {
        var worker = ServingFixture.BuildWorker(models.Path);
        await worker.StartAsync();
        try
        {
            await test();
        }
        finally
        {
            await worker.StopAsync(TimeSpan.FromSeconds(30));
            worker.Dispose();
        }
    }

    [Fact]
    public async Task A_message_that_does_not_deserialize_ends_its_job_failed_with_the_reason()
    {
        using var models = new PrivateModels();
        await using var api = CreateApi(models);
        using var client = serving.Client(api);
        await WithWorkerAsync(models, async () =>
        {
            var id = await CreateQueuedJobAsync(api, models);
            await SendRawAsync(api.Services, models.Queue, Envelope("RunInference", Message(id, models, submittedAt: "the day before yesterday")));

            var job = await SweepUntilEndedAsync(api, client, id);
            Assert.Equal("failed", job.GetProperty("status").GetString());
            Assert.Equal("dead_letter", job.GetProperty("error").GetProperty("code").GetString());
            var message = job.GetProperty("error").GetProperty("message").GetString()!;
            Assert.Contains(models.Queue + "_error", message, StringComparison.Ordinal);

            // Kept for the operator, who cannot send it again: it never read as a job.
            var record = await api.Services.GetRequiredService<DeadLetterStore>().GetAsync(id);
            Assert.NotNull(record);
            var (requeued, outcome) = await api.Services.GetRequiredService<DeadLetterRequeue>().RequeueAsync(id);
            Assert.False(requeued);
            Assert.Contains("cannot be sent again", outcome, StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task A_message_no_consumer_takes_ends_its_job_and_an_operator_can_requeue_it()
    {
        using var models = new PrivateModels();
        await using var api = CreateApi(models);
        using var client = serving.Client(api);
        await WithWorkerAsync(models, async () =>
        {
            // A sender of another version names a message type this worker does not know.
            var id = await CreateQueuedJobAsync(api, models);
            await SendRawAsync(api.Services, models.Queue, Envelope("RunInferenceV0", Message(id, models, DateTimeOffset.UtcNow)));

            var job = await SweepUntilEndedAsync(api, client, id);
            Assert.Equal("failed", job.GetProperty("status").GetString());
            Assert.Equal("dead_letter", job.GetProperty("error").GetProperty("code").GetString());
            Assert.Contains(models.Queue + "_skipped", job.GetProperty("error").GetProperty("message").GetString()!, StringComparison.Ordinal);

            var (requeued, outcome) = await api.Services.GetRequiredService<DeadLetterRequeue>().RequeueAsync(id);
            Assert.True(requeued, outcome);
            var done = await ServingFixture.WaitForTerminalAsync(client, id);
            Assert.Equal("succeeded", done.GetProperty("status").GetString());
            Assert.Equal(512, done.GetProperty("output").GetProperty("dims").GetInt32());
            Assert.Equal(1, done.GetProperty("attempts").GetInt32());
            Assert.Null(await api.Services.GetRequiredService<DeadLetterStore>().GetAsync(id));

            // A second requeue finds nothing to do.
            Assert.False((await api.Services.GetRequiredService<DeadLetterRequeue>().RequeueAsync(id)).Requeued);
        });
    }

    [Fact]
    public async Task A_dead_letter_of_several_jobs_ends_each_and_each_can_be_requeued_on_its_own()
    {
        using var models = new PrivateModels();
        await using var api = CreateApi(models);
        using var client = serving.Client(api);
        await WithWorkerAsync(models, async () =>
        {
            // A message of several jobs that no consumer takes, as a worker older than RunInferenceBatch would meet one.
            var first = await CreateQueuedJobAsync(api, models);
            var second = await CreateQueuedJobAsync(api, models);
            await SendRawAsync(api.Services, models.Queue, Envelope("RunInferenceBatchV0", new
            {
                jobs = new[] { Message(first, models, DateTimeOffset.UtcNow), Message(second, models, DateTimeOffset.UtcNow) },
            }));

            foreach (var id in new[] { first, second })
            {
                var job = await SweepUntilEndedAsync(api, client, id);
                Assert.Equal("failed", job.GetProperty("status").GetString());
                Assert.Equal("dead_letter", job.GetProperty("error").GetProperty("code").GetString());
                Assert.Contains(models.Queue + "_skipped", job.GetProperty("error").GetProperty("message").GetString()!, StringComparison.Ordinal);
                var record = await api.Services.GetRequiredService<DeadLetterStore>().GetAsync(id);
                Assert.NotNull(record);
                Assert.Contains(id, record.MessageJson!, StringComparison.Ordinal);
            }

            // Each was kept with a message of its own: one requeued runs alone, the other stays failed.
            var (requeued, outcome) = await api.Services.GetRequiredService<DeadLetterRequeue>().RequeueAsync(second);
            Assert.True(requeued, outcome);
            var done = await ServingFixture.WaitForTerminalAsync(client, second);
            Assert.Equal("succeeded", done.GetProperty("status").GetString());
            Assert.Equal(1, done.GetProperty("attempts").GetInt32());
            Assert.Equal("failed", (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{first}")).GetProperty("status").GetString());
            Assert.NotNull(await api.Services.GetRequiredService<DeadLetterStore>().GetAsync(first));
        });
    }

    [Fact]
    public async Task A_dead_letter_that_names_no_job_is_moved_aside_not_dropped()
    {
        using var models = new PrivateModels();
        await using var api = CreateApi(models);
        var errorQueue = models.Queue + "_error";
        await using (var connection = await Factory(api.Services).CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.QueueDeclareAsync(errorQueue, durable: true, exclusive: false, autoDelete: false, arguments: null);
            await channel.QueueDeclareAsync("dead-letters-unreadable", durable: true, exclusive: false, autoDelete: false, arguments: null);
            await channel.QueuePurgeAsync("dead-letters-unreadable");
        }

        await SendRawAsync(api.Services, errorQueue, "this is not JSON", "text/plain");
        Assert.Equal(1, await api.Services.GetRequiredService<DeadLetterSweeper>().SweepAsync(CancellationToken.None));

        await using var check = await Factory(api.Services).CreateConnectionAsync();
        await using var read = await check.CreateChannelAsync();
        Assert.Equal(0u, await read.MessageCountAsync(errorQueue));
        var parked = await read.BasicGetAsync("dead-letters-unreadable", autoAck: true);
        Assert.NotNull(parked);
        Assert.Equal("this is not JSON", Encoding.UTF8.GetString(parked.Body.Span));
    }

    [Fact]
    public async Task Operators_see_dead_lettered_jobs_on_the_dashboard_and_requeue_them_from_the_same_site_only()
    {
        using var models = new PrivateModels(); // no worker: the requeued job waits queued
        await using var api = CreateApi(models);
        using var client = serving.Client(api);
        var id = await CreateQueuedJobAsync(api, models);
        var message = JsonSerializer.Serialize(Message(id, models, DateTimeOffset.UtcNow), JsonSerializerOptions.Web);
        await api.Services.GetRequiredService<DeadLetterStore>().SaveAsync(new DeadLetterRecord(id, models.Queue + "_error", "System.InvalidOperationException: boom", DateTimeOffset.UtcNow, message));
        Assert.True(await api.Services.GetRequiredService<RedisJobStore>().FailDeadLetteredAsync(id, "dead_letter", "moved to _error: boom"));

        using var dashboard = await DashboardTests.SignInAsync(api, serving.DashboardPassword);
        var page = await dashboard.GetStringAsync("/hangfire/dead-letters");
        Assert.Contains(id, page, StringComparison.Ordinal);
        Assert.Contains("System.InvalidOperationException: boom", page, StringComparison.Ordinal);
        var token = System.Text.RegularExpressions.Regex.Match(page, "name=\"__RequestVerificationToken\" value=\"([^\"]+)\"");
        Assert.True(token.Success, "the Requeue form carries an antiforgery token");

        FormUrlEncodedContent Form(bool withToken) => new([new("id", id), .. withToken ? [new KeyValuePair<string, string>("__RequestVerificationToken", System.Net.WebUtility.HtmlDecode(token.Groups[1].Value))] : Array.Empty<KeyValuePair<string, string>>()]);

        // From another site, or without the page's token: refused, the job stays failed.
        using var crossSite = new HttpRequestMessage(HttpMethod.Post, "/hangfire/dead-letters/requeue") { Content = Form(withToken: true) };
        crossSite.Headers.Add("Origin", "http://evil.example");
        Assert.Equal(HttpStatusCode.Forbidden, (await dashboard.SendAsync(crossSite)).StatusCode);
        using var noToken = new HttpRequestMessage(HttpMethod.Post, "/hangfire/dead-letters/requeue") { Content = Form(withToken: false) };
        noToken.Headers.Add("Origin", "http://localhost");
        Assert.NotEqual(HttpStatusCode.SeeOther, (await dashboard.SendAsync(noToken)).StatusCode);
        Assert.Equal("failed", (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}")).GetProperty("status").GetString());

        using var requeue = new HttpRequestMessage(HttpMethod.Post, "/hangfire/dead-letters/requeue") { Content = Form(withToken: true) };
        requeue.Headers.Add("Origin", "http://localhost");
        requeue.Headers.Add("Sec-Fetch-Site", "same-origin");
        var answer = await dashboard.SendAsync(requeue);
        Assert.Equal(HttpStatusCode.SeeOther, answer.StatusCode);
        Assert.Contains("queued%20again", answer.Headers.Location!.OriginalString.Replace("+", "%20", StringComparison.Ordinal), StringComparison.Ordinal);
        var job = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
        Assert.Equal("queued", job.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, job.GetProperty("error").ValueKind);
        Assert.DoesNotContain(id, await dashboard.GetStringAsync("/hangfire/dead-letters"), StringComparison.Ordinal);
    }
}
