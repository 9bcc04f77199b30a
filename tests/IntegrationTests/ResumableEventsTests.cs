using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// <c>GET /v1/jobs/{id}/events</c> resumed with <c>Last-Event-ID</c>: a video job's stream is dropped
/// mid-way and picked up on another API instance, and the two parts together hold every event once.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class ResumableEventsTests(ServingFixture serving)
{
    private sealed record SseEvent(string Id, string Type, JsonElement Job);

    private static object VideoBody(byte[] video) => new
    {
        pipeline = "video.analyze",
        input = new { base64 = Convert.ToBase64String(video) },
        @params = new { sample_fps = 10 },
    };

    private static async Task<string> SubmitAsync(HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs", body);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    /// <summary>Ids order as the triple of integers they are made of.</summary>
    private static (int, int, int) Order(string id)
    {
        var parts = id.Split('.').Select(int.Parse).ToArray();
        Assert.Equal(3, parts.Length);
        return (parts[0], parts[1], parts[2]);
    }

    /// <summary>Reads events until the stream ends or <paramref name="stopAfter"/> says to hang up (after the event it was given).</summary>
    private static async Task<List<SseEvent>> ReadAsync(HttpClient client, string url, string? lastEventId, Func<SseEvent, bool>? stopAfter = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<SseEvent>();
        string? id = null, type = null, data = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.Length == 0)
            {
                if (data is not null)
                {
                    Assert.False(id is null, "every event carries an id");
                    var e = new SseEvent(id, type ?? "message", JsonDocument.Parse(data).RootElement.Clone());
                    events.Add(e);
                    if (stopAfter?.Invoke(e) == true)
                    {
                        return events; // disposing the response drops the connection
                    }
                }

                id = type = data = null;
            }
            else if (line.StartsWith("id: ", StringComparison.Ordinal))
            {
                id = line["id: ".Length..];
            }
            else if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                type = line["event: ".Length..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                data = line["data: ".Length..];
            }
        }

        return events;
    }

    [Fact]
    public async Task A_stream_dropped_mid_way_resumes_on_another_instance_without_loss_or_repeat()
    {
        await using var other = serving.CreateApi();
        using var first = serving.Client();
        using var second = serving.Client(other);
        var video = await TestVideos.ShotsAsync([(31, 8.0), (32, 8.0)], width: 320, height: 240);
        var id = await SubmitAsync(first, VideoBody(video));

        var before = await ReadAsync(first, $"/v1/jobs/{id}/events", lastEventId: null, stopAfter: e => e.Type == "progress");
        Assert.Equal("progress", before[^1].Type); // dropped while the job runs, not after it ended
        var after = await ReadAsync(second, $"/v1/jobs/{id}/events", before[^1].Id);

        var all = before.Concat(after).ToList();
        Assert.NotEmpty(after);
        Assert.Equal(all.Select(e => e.Id).Distinct().Count(), all.Count);
        for (var i = 1; i < all.Count; i++)
        {
            Assert.True(Order(all[i - 1].Id).CompareTo(Order(all[i].Id)) < 0, $"id {all[i].Id} follows {all[i - 1].Id}");
        }

        Assert.Single(all, e => e.Type == "completed");
        Assert.Equal("completed", all[^1].Type);
        Assert.Equal("succeeded", all[^1].Job.GetProperty("status").GetString());
        Assert.Equal(2, all[^1].Job.GetProperty("output").GetProperty("shots").GetArrayLength());
        // An event's id names the state it carries.
        Assert.All(all, e => Assert.Equal(
            (int)Math.Floor(e.Job.GetProperty("progress").GetDouble() * 1000), Order(e.Id).Item3));
    }

    [Fact]
    public async Task After_the_end_a_resumed_stream_gives_the_completion_once_or_nothing()
    {
        using var client = serving.Client();
        var video = await TestVideos.ShotsAsync([(33, 2.0)], width: 160, height: 120);
        var id = await SubmitAsync(client, VideoBody(video));
        var whole = await ReadAsync(client, $"/v1/jobs/{id}/events", lastEventId: null);
        Assert.Equal("completed", whole[^1].Type);
        Assert.Equal("succeeded", whole[^1].Job.GetProperty("status").GetString());

        // Last seen: an event before the end. What is missed now is the completion alone.
        var missed = await ReadAsync(client, $"/v1/jobs/{id}/events", whole[0].Type == "completed" ? "0.0.0" : whole[0].Id);
        var completion = Assert.Single(missed);
        Assert.Equal("completed", completion.Type);
        Assert.Equal(whole[^1].Id, completion.Id);

        // Last seen: the completion, by header and by query. The stream ends at once, empty.
        Assert.Empty(await ReadAsync(client, $"/v1/jobs/{id}/events", whole[^1].Id));
        Assert.Empty(await ReadAsync(client, $"/v1/jobs/{id}/events?last_event_id={Uri.EscapeDataString(whole[^1].Id)}", lastEventId: null));

        using var bad = new HttpRequestMessage(HttpMethod.Get, $"/v1/jobs/{id}/events");
        bad.Headers.Add("Last-Event-ID", "not-an-id");
        await Problems.AssertAsync(await client.SendAsync(bad), HttpStatusCode.BadRequest, "input_invalid");
    }
}
