using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The per-key rate limit and the queue-full check hold for a fleet of API instances, not per
/// process: two API instances in this process, against the one Redis and RabbitMQ of the run, admit
/// together no more than one instance may.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class FleetLimitsTests(ServingFixture serving)
{
    private const int Burst = 10;
    private const int PermitsPerSecond = 1;
    private const int RequestsPerInstance = 25;

    [Fact]
    public async Task Two_api_instances_take_one_keys_requests_from_one_shared_bucket()
    {
        // A key of its own: its bucket starts full and no other test takes from it.
        var key = "sk_test_fleet_" + Guid.NewGuid().ToString("N");
        var settings = new Dictionary<string, string?>
        {
            ["Serving:Auth:DevelopmentKey"] = key,
            ["Serving:Auth:DevelopmentTenant"] = "fleet-" + Guid.NewGuid().ToString("N")[..8],
            ["Serving:RateLimits:PermitsPerSecond"] = PermitsPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Serving:RateLimits:Burst"] = Burst.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        await using var first = serving.CreateApi(settings);
        await using var second = serving.CreateApi(settings);
        using var a = serving.Client(first, key);
        using var b = serving.Client(second, key);
        _ = first.Server;
        _ = second.Server;

        var clock = Stopwatch.StartNew();
        var responses = await Task.WhenAll(Enumerable.Range(0, 2 * RequestsPerInstance)
            .Select(i => (i % 2 == 0 ? a : b).GetAsync("/v1/models")));
        var elapsed = clock.Elapsed;

        var admitted = responses.Count(r => r.StatusCode == HttpStatusCode.OK);
        Assert.All(responses, r => Assert.Contains(r.StatusCode, new[] { HttpStatusCode.OK, HttpStatusCode.TooManyRequests }));
        // One bucket: its burst plus what it refilled while the requests ran (each instance alone would
        // admit its own burst, 2 x Burst together). A second of refill more for a request that began
        // before the last refill and was counted after it.
        var refilled = PermitsPerSecond * ((int)Math.Ceiling(elapsed.TotalSeconds) + 1);
        Assert.True(admitted >= 1, "the bucket admitted nothing");
        Assert.True(admitted <= Burst + refilled,
            $"the two instances admitted {admitted} requests of one key in {elapsed.TotalSeconds:F1} s; one shared bucket admits at most {Burst + refilled}");

        var limited = responses.First(r => r.StatusCode == HttpStatusCode.TooManyRequests);
        await Problems.AssertAsync(limited, HttpStatusCode.TooManyRequests, "rate_limited");
        Assert.InRange(limited.Headers.RetryAfter?.Delta ?? TimeSpan.Zero, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task Two_api_instances_fill_a_models_queue_only_to_its_limit_between_two_measurements()
    {
        const int maxDepth = 3;
        // One measurement (the empty queue) for the whole test: only the shared count of admitted
        // submits can stop the second instance; a cache in each process would let each admit 3.
        await using var fleet = new QueueLimitedFleet(serving, maxDepth);

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? full = null;
        for (var i = 0; i < 4 * maxDepth; i++)
        {
            var response = await fleet.SubmitAsync(i, seed: 900);
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                full ??= response;
            }
        }

        Assert.Equal(maxDepth, statuses.Count(s => s == HttpStatusCode.Accepted));
        Assert.Equal(Enumerable.Repeat(HttpStatusCode.Accepted, maxDepth), statuses.Take(maxDepth));
        Assert.NotNull(full);
        var problem = await Problems.AssertAsync(full, HttpStatusCode.ServiceUnavailable, "queue_full");
        Assert.Equal(JsonValueKind.String, problem.GetProperty("detail").ValueKind);
        Assert.NotNull(full.Headers.RetryAfter);
    }

    [Fact]
    public async Task Two_api_instances_taking_admissions_in_chunks_still_stop_exactly_at_the_limit()
    {
        // A limit of 2,000 takes admissions two at a time (ChunkOf). The shared measurement is set to
        // 5 below the limit, so only the shared count of the chunks both instances took can stop them.
        const int maxDepth = 2_000;
        const int room = 5;
        Assert.Equal(2, Async.Serving.Api.Jobs.QueueDepthProbe.ChunkOf(maxDepth));
        await using var fleet = new QueueLimitedFleet(serving, maxDepth);
        var redis = fleet.First.Services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>().GetDatabase();
        var shared = (StackExchange.Redis.RedisKey)$"queue-depth:{fleet.Models.Name}@1";
        await redis.HashSetAsync(shared, [new("depth", maxDepth - room), new("admitted", 0)]);
        await redis.KeyExpireAsync(shared, TimeSpan.FromMinutes(1));

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 4 * room; i++)
        {
            statuses.Add((await fleet.SubmitAsync(i, seed: 950)).StatusCode);
            if (i == 0)
            {
                // The first submit took a whole chunk from the fleet's count, not one admission.
                Assert.Equal(2, (long)await redis.HashGetAsync(shared, "admitted"));
            }
        }

        // Each instance holds a chunk of 2 at a time, and the fleet together got exactly the 5 left.
        Assert.Equal(room, statuses.Count(s => s == HttpStatusCode.Accepted));
        Assert.All(statuses, s => Assert.Contains(s, new[] { HttpStatusCode.Accepted, HttpStatusCode.ServiceUnavailable }));
        Assert.Equal(room, (long)await redis.HashGetAsync(shared, "admitted"));
    }

    /// <summary>
    /// Two API instances with a queue limit of <c>maxDepth</c> and one depth measurement for a minute,
    /// on a model of their own that no worker serves (what is admitted stays queued); submits alternate between them.
    /// </summary>
    private sealed class QueueLimitedFleet : IAsyncDisposable
    {
        private readonly HttpClient _a;
        private readonly HttpClient _b;
        private readonly Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactory<Program> _second;

        public QueueLimitedFleet(ServingFixture serving, int maxDepth)
        {
            var settings = new Dictionary<string, string?>
            {
                ["Serving:Models:Path"] = Models.Path,
                ["Serving:Queues:MaxDepth"] = maxDepth.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Serving:Queues:DepthCacheTime"] = "00:01:00",
            };
            First = serving.CreateApi(settings);
            _second = serving.CreateApi(settings);
            _a = serving.Client(First);
            _b = serving.Client(_second);
        }

        public PrivateModels Models { get; } = new();

        public Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactory<Program> First { get; }

        /// <summary>The <paramref name="i"/>-th submit, to the first instance when even, the second when odd.</summary>
        public Task<HttpResponseMessage> SubmitAsync(int i, int seed) =>
            (i % 2 == 0 ? _a : _b).PostAsJsonAsync("/v1/jobs", new
            {
                pipeline = "image.embed",
                model = Models.Name,
                input = new { base64 = Convert.ToBase64String(TestImages.Scene(seed + i, 64, 48)) },
            });

        public async ValueTask DisposeAsync()
        {
            _a.Dispose();
            _b.Dispose();
            await First.DisposeAsync();
            await _second.DisposeAsync();
            Models.Dispose();
        }
    }
}
