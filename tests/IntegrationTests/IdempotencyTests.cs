using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Async.Serving.Jobs;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// An Idempotency-Key left behind by a submit that failed half-way never blocks, nor doubles, the
/// client's retry: a key pointing at a job that was removed (its publish failed and the release did
/// not reach Redis) or pending since a submit that cannot still be running is taken over.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class IdempotencyTests(ServingFixture serving)
{
    private static object Body(int seed) => new
    {
        pipeline = "image.embed",
        model = "resnet18",
        input = new { base64 = Convert.ToBase64String(TestImages.Scene(seed, 64, 48)) },
    };

    private static async Task<HttpResponseMessage> SubmitAsync(HttpClient client, string key, int seed)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = JsonContent.Create(Body(seed)) };
        request.Headers.Add("Idempotency-Key", key);
        return await client.SendAsync(request);
    }

    private static async Task<string> IdAsync(HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

    private RedisKey KeyOf(string key) => $"idem:{serving.Tenant}:{Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))}";

    [Fact]
    public async Task A_key_pointing_at_a_removed_job_is_taken_over_by_the_retry()
    {
        using var client = serving.Client();
        var key = "idem-" + Guid.NewGuid().ToString("N");
        var first = await SubmitAsync(client, key, 120);
        await Problems.AssertStatusAsync(first, HttpStatusCode.Accepted);
        var removed = await IdAsync(first);
        await ServingFixture.WaitForTerminalAsync(client, removed);

        // As when its publish failed and the key's release did not reach Redis: the job is gone, the key still names it.
        await serving.Api.Services.GetRequiredService<RedisJobStore>().DeleteAsync(removed, serving.Tenant);

        var retry = await SubmitAsync(client, key, 120);
        await Problems.AssertStatusAsync(retry, HttpStatusCode.Accepted);
        var id = await IdAsync(retry);
        Assert.NotEqual(removed, id);
        Assert.False(retry.Headers.Contains("Idempotent-Replayed"));

        var again = await SubmitAsync(client, key, 120); // and from now on that job is the key's
        Assert.Equal(id, await IdAsync(again));
        Assert.True(again.Headers.Contains("Idempotent-Replayed"));
    }

    [Fact]
    public async Task A_key_left_pending_by_a_submit_that_stopped_is_taken_over_and_a_live_one_answers_409()
    {
        using var client = serving.Client();
        var db = serving.Api.Services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
        var key = "idem-" + Guid.NewGuid().ToString("N");
        var first = await SubmitAsync(client, key, 121);
        await Problems.AssertStatusAsync(first, HttpStatusCode.Accepted);
        var fingerprint = ((string)(await db.StringGetAsync(KeyOf(key)))!).Split(':')[0];

        // An API that stopped right after claiming the key, two minutes ago.
        var stopped = DateTimeOffset.UtcNow.AddMinutes(-2).ToUnixTimeMilliseconds();
        await db.StringSetAsync(KeyOf(key), $"{fingerprint}:pending:{stopped}", TimeSpan.FromHours(24));
        var retry = await SubmitAsync(client, key, 121);
        await Problems.AssertStatusAsync(retry, HttpStatusCode.Accepted);
        Assert.NotEqual(await IdAsync(first), await IdAsync(retry));

        // A claim that may still be submitting is waited for, then answered 409 with Retry-After, never a second job.
        await db.StringSetAsync(KeyOf(key), $"{fingerprint}:pending:{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}", TimeSpan.FromHours(24));
        var busy = await SubmitAsync(client, key, 121);
        await Problems.AssertAsync(busy, HttpStatusCode.Conflict, "conflict");
        Assert.NotNull(busy.Headers.RetryAfter);
    }
}
