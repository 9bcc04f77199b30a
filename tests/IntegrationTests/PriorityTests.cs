using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Async.Serving.Api.DeadLetters;
using Async.Serving.Messaging;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// Priorities end to end: the submit's field and the tenant's default, the lane (queue) each job is
/// sent to, the worker's weighted order over a backlog (by <c>started_at</c> order, never timings)
/// with every low job still finishing, and an operator's requeue back to the lane the message left.
/// Each test has its own private model, so its lanes hold only its jobs.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class PriorityTests(ServingFixture serving)
{
    private static object Job(PrivateModels models, int seed, string? priority = null) => new
    {
        pipeline = "image.embed",
        model = models.Name,
        input = new { base64 = Convert.ToBase64String(TestImages.Scene(seed, 64, 48)) },
        priority,
    };

    private WebApplicationFactory<Program> CreateApi(PrivateModels models, IDictionary<string, string?>? settings = null)
    {
        var overrides = new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path, ["Serving:DeadLetters:RunSweeper"] = "false" };
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>())
        {
            overrides[k] = v;
        }

        return serving.CreateApi(overrides);
    }

    private static async Task<JsonElement> SubmitAsync(HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs", body);
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>Ready messages in each lane of the model's queue, by passive declares (exact, unlike the management API's sampled stats).</summary>
    private static async Task<Dictionary<string, uint>> LaneDepthsAsync(IServiceProvider services, PrivateModels models)
    {
        var factory = services.GetRequiredService<IOptions<RabbitMqOptions>>().Value.ConnectionFactory("priority-tests");
        await using var connection = await factory.CreateConnectionAsync();
        var depths = new Dictionary<string, uint>();
        foreach (var (priority, queue) in JobQueues.Lanes(models.Queue))
        {
            await using var channel = await connection.CreateChannelAsync();
            try
            {
                depths[priority] = (await channel.QueueDeclarePassiveAsync(queue)).MessageCount;
            }
            catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
            {
                depths[priority] = 0;
            }
        }

        return depths;
    }

    [Fact]
    public async Task A_priority_that_is_not_low_normal_or_high_is_refused_with_400_naming_the_values_in_JSON_and_multipart()
    {
        using var models = new PrivateModels();
        await using var api = CreateApi(models);
        using var client = serving.Client(api);

        foreach (var bad in new object[] { "urgent", "HIGH", 5 })
        {
            var response = await client.PostAsJsonAsync("/v1/jobs", new
            {
                pipeline = "image.embed",
                model = models.Name,
                input = new { base64 = Convert.ToBase64String(TestImages.Scene(1, 64, 48)) },
                priority = bad,
            });
            var problem = await Problems.AssertAsync(response, HttpStatusCode.BadRequest, "input_invalid");
            Assert.True(problem.GetProperty("errors").TryGetProperty("priority", out var errors), problem.ToString());
            if (bad is string)
            {
                Assert.Contains("low, normal, high", errors[0].GetString(), StringComparison.Ordinal);
            }
        }

        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(TestImages.Scene(2, 64, 48));
        file.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
        form.Add(file, "file", "scene.jpg");
        form.Add(new StringContent($$"""{"pipeline":"image.embed","model":"{{models.Name}}","priority":"asap"}""", Encoding.UTF8), "request");
        var multipart = await Problems.AssertAsync(await client.PostAsync("/v1/jobs", form), HttpStatusCode.BadRequest, "input_invalid");
        Assert.Contains("low, normal, high", multipart.GetProperty("errors").GetProperty("priority")[0].GetString(), StringComparison.Ordinal);

        Assert.Equal(0u, (await LaneDepthsAsync(api.Services, models)).Values.Aggregate(0u, (a, b) => a + b));
    }

    [Fact]
    public async Task A_job_goes_to_its_priority_lane_and_one_without_a_priority_takes_its_tenants_default_else_normal()
    {
        using var models = new PrivateModels();
        await using (var plain = CreateApi(models))
        {
            using var client = serving.Client(plain);
            Assert.Equal("normal", (await SubmitAsync(client, Job(models, 1))).GetProperty("priority").GetString());
            var high = await SubmitAsync(client, Job(models, 2, "high"));
            Assert.Equal("high", high.GetProperty("priority").GetString());
            Assert.Equal("high", (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{high.GetProperty("id").GetString()}")).GetProperty("priority").GetString());
        }

        await using var api = CreateApi(models, new Dictionary<string, string?> { [$"Serving:Tenants:{serving.Tenant}:DefaultPriority"] = "low" });
        using (var client = serving.Client(api))
        {
            Assert.Equal("low", (await SubmitAsync(client, Job(models, 3))).GetProperty("priority").GetString());
            Assert.Equal("normal", (await SubmitAsync(client, Job(models, 4, "normal"))).GetProperty("priority").GetString());

            // Multipart: the request part's priority.
            using var form = new MultipartFormDataContent();
            var file = new ByteArrayContent(TestImages.Scene(5, 64, 48));
            file.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
            form.Add(file, "file", "scene.jpg");
            form.Add(new StringContent($$"""{"pipeline":"image.embed","model":"{{models.Name}}","priority":"high"}""", Encoding.UTF8), "request");
            var response = await client.PostAsync("/v1/jobs", form);
            await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
            Assert.Equal("high", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("priority").GetString());
        }

        // No worker serves the model: every message waits in the lane it was sent to.
        var depths = await LaneDepthsAsync(api.Services, models);
        Assert.Equal(2u, depths["high"]);
        Assert.Equal(2u, depths["normal"]);
        Assert.Equal(1u, depths["low"]);
        foreach (var (_, queue) in JobQueues.Lanes(models.Queue))
        {
            Assert.Equal("quorum", await new RabbitManagement().QueueTypeAsync(queue));
        }
    }

    [Fact]
    public void An_unknown_tenant_default_fails_the_start_naming_the_setting()
    {
        using var models = new PrivateModels();
        using var api = CreateApi(models, new Dictionary<string, string?> { ["Serving:Tenants:acme:DefaultPriority"] = "urgent" });
        var error = Assert.ThrowsAny<Exception>(() => api.Server);
        Assert.Contains("Serving:Tenants:acme:DefaultPriority", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Over_a_backlog_high_jobs_start_before_most_low_jobs_queued_earlier_and_every_low_job_still_finishes()
    {
        // One job at a time: max_batch_size 1, one instance, one batch in flight.
        using var models = new PrivateModels(c =>
        {
            c["max_batch_size"] = 1;
            c["instances"] = 1;
        });
        await using var api = CreateApi(models);
        using var client = serving.Client(api);

        // The backlog builds with no worker: low jobs first, then high ones.
        var low = new List<string>();
        var high = new List<string>();
        for (var i = 0; i < 24; i++)
        {
            low.Add((await SubmitAsync(client, Job(models, 100 + i, "low"))).GetProperty("id").GetString()!);
        }

        for (var i = 0; i < 8; i++)
        {
            high.Add((await SubmitAsync(client, Job(models, 200 + i, "high"))).GetProperty("id").GetString()!);
        }

        using var worker = ServingFixture.BuildWorker(models.Path, new Dictionary<string, string?> { ["Serving:Worker:PrefetchBatches"] = "1" });
        await worker.StartAsync();
        var started = new Dictionary<string, DateTime>();
        try
        {
            foreach (var id in low.Concat(high))
            {
                var job = await ServingFixture.WaitForTerminalAsync(client, id);
                Assert.Equal("succeeded", job.GetProperty("status").GetString());
                started[id] = job.GetProperty("started_at").GetDateTime();
            }
        }
        finally
        {
            await worker.StopAsync(TimeSpan.FromSeconds(30));
        }

        // Order, not timings: with one slot, jobs start one after another.
        var lastHigh = high.Max(id => started[id]);
        var lowBeforeLastHigh = low.Count(id => started[id] < lastHigh);
        Assert.True(lowBeforeLastHigh < low.Count / 2,
            $"{lowBeforeLastHigh} of {low.Count} low jobs started before the last high job (order: {string.Join(' ', started.OrderBy(s => s.Value).Select(s => high.Contains(s.Key) ? 'H' : 'l'))})");
        var meanRank = started.OrderBy(s => s.Value).Select((s, rank) => (s.Key, rank)).ToDictionary(x => x.Key, x => x.rank);
        Assert.True(high.Average(id => meanRank[id]) < low.Average(id => meanRank[id]));
    }

    [Fact]
    public async Task An_operators_requeue_sends_a_dead_lettered_high_job_back_to_the_high_lane()
    {
        using var models = new PrivateModels();
        await using var api = CreateApi(models);
        using var client = serving.Client(api);
        var id = (await SubmitAsync(client, Job(models, 7, "high"))).GetProperty("id").GetString()!;

        // MassTransit's move to the lane's _error queue, done by hand: take the message from the high lane.
        var highQueue = JobQueues.Lane(models.Queue, "high");
        var factory = api.Services.GetRequiredService<IOptions<RabbitMqOptions>>().Value.ConnectionFactory("priority-tests");
        await using (var connection = await factory.CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true)))
        {
            var message = await channel.BasicGetAsync(highQueue, autoAck: false);
            Assert.NotNull(message);
            await channel.QueueDeclareAsync(highQueue + "_error", durable: true, exclusive: false, autoDelete: false, arguments: null);
            await channel.BasicPublishAsync(string.Empty, highQueue + "_error", mandatory: true,
                new BasicProperties(message.BasicProperties) { Headers = new Dictionary<string, object?> { ["MT-Reason"] = "fault" } }, message.Body);
            await channel.BasicAckAsync(message.DeliveryTag, multiple: false);
        }

        Assert.True(await api.Services.GetRequiredService<DeadLetterSweeper>().SweepAsync(CancellationToken.None) >= 1);
        var failed = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
        Assert.Equal("dead_letter", failed.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(0u, (await LaneDepthsAsync(api.Services, models))["high"]);

        var (requeued, outcome) = await api.Services.GetRequiredService<DeadLetterRequeue>().RequeueAsync(id);
        Assert.True(requeued, outcome);
        Assert.Contains(highQueue, outcome, StringComparison.Ordinal);
        var depths = await LaneDepthsAsync(api.Services, models);
        Assert.Equal(1u, depths["high"]);
        Assert.Equal(0u, depths["normal"] + depths["low"]);
        var queued = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
        Assert.Equal("queued", queued.GetProperty("status").GetString());
        Assert.Equal("high", queued.GetProperty("priority").GetString());
    }
}
