using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Hosting;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// Job queues are quorum queues, declared the same way by the worker (its receive endpoint) and by
/// the API (before its first send), so that neither side's declaration is refused by the other's,
/// whichever comes first. Types are read through the RabbitMQ management API in the run's vhost.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class QueueTopologyTests(ServingFixture serving) : IDisposable
{
    private readonly PrivateModels _models = new();
    private readonly RabbitManagement _rabbit = new();

    public void Dispose()
    {
        _models.Dispose();
        _rabbit.Dispose();
    }

    private object Job(int seed) => new
    {
        pipeline = "image.embed",
        model = _models.Name,
        input = new { base64 = Convert.ToBase64String(TestImages.Scene(seed, 160, 120)) },
    };

    [Fact]
    public async Task The_workers_job_queue_is_a_quorum_queue()
    {
        _ = serving.Models; // the fixture's worker is started and has declared its queues
        var queue = await _rabbit.GetQueueAsync("infer-resnet18-1");

        Assert.NotNull(queue);
        Assert.Equal("quorum", queue.Value.GetProperty("type").GetString());
        Assert.True(queue.Value.GetProperty("durable").GetBoolean());
    }

    [Fact]
    public async Task Every_priority_lane_of_the_workers_model_is_a_durable_quorum_queue()
    {
        _ = serving.Models;
        foreach (var (_, lane) in Async.Serving.Messaging.JobQueues.Lanes("infer-resnet18-1"))
        {
            var queue = await _rabbit.GetQueueAsync(lane);
            Assert.True(queue is not null, $"{lane} not declared by the worker");
            Assert.Equal("quorum", queue.Value.GetProperty("type").GetString());
            Assert.True(queue.Value.GetProperty("durable").GetBoolean());
        }
    }

    [Fact]
    public async Task A_job_submitted_before_any_worker_waits_in_a_quorum_queue_and_runs_when_one_starts()
    {
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = _models.Path });
        using var client = serving.Client(api);

        var response = await client.PostAsJsonAsync("/v1/jobs", Job(1));
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        Assert.Equal("quorum", await _rabbit.QueueTypeAsync(_models.Queue));

        // The worker declares the same queue again: an API that had declared it classic would stop it here.
        using var worker = ServingFixture.BuildWorker(_models.Path);
        await worker.StartAsync();
        try
        {
            var job = await ServingFixture.WaitForTerminalAsync(client, id);
            Assert.Equal("succeeded", job.GetProperty("status").GetString());
        }
        finally
        {
            await worker.StopAsync(TimeSpan.FromSeconds(30));
        }
    }

    [Fact]
    public async Task A_job_whose_queue_was_deleted_is_refused_not_lost_and_the_next_submit_declares_the_queue_again()
    {
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = _models.Path });
        using var client = serving.Client(api);
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsJsonAsync("/v1/jobs", Job(2))).StatusCode);

        await _rabbit.DeleteQueueAsync(_models.Queue);
        var refused = await client.PostAsJsonAsync("/v1/jobs", Job(3));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("broker_unavailable", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());

        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsJsonAsync("/v1/jobs", Job(4))).StatusCode);
        Assert.Equal("quorum", await _rabbit.QueueTypeAsync(_models.Queue));
    }
}
