using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Async.Serving.Fixtures;
using Async.Serving.Jobs;
using Async.Serving.Worker.Embedding;
using Async.Serving.Worker.Video;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Async.Serving.IntegrationTests;

/// <summary><c>video.analyze</c> end to end: videos made by ffmpeg in the test, submitted through the API, run by the fixture's worker.</summary>
[Collection(ServingCollection.Name)]
public sealed class VideoTests(ServingFixture serving, ITestOutputHelper output)
{
    private static object Body(byte[] video, object? parameters = null, int? timeout = null, object? webhook = null) => new
    {
        pipeline = "video.analyze",
        input = new { base64 = Convert.ToBase64String(video) },
        @params = parameters,
        timeout_seconds = timeout,
        webhook,
    };

    private static async Task<string> SubmitAsync(HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs", body);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement> SucceededAsync(HttpClient client, string id)
    {
        var job = await ServingFixture.WaitForTerminalAsync(client, id);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        return job.GetProperty("output");
    }

    [Fact]
    public async Task A_video_with_known_cuts_is_split_at_the_right_times()
    {
        // Cuts at 3.0 s and 5.5 s; sampled at 4 fps, a boundary is at most half a sample interval off.
        var video = await TestVideos.ShotsAsync([(11, 3.0), (12, 2.5), (13, 3.5)]);
        using var client = serving.Client();
        // The frames go through the very batcher that serves image.embed jobs.
        var resnet = serving.Pipeline<ImageEmbedPipeline>().Get("resnet18@1")!;
        Assert.Same(resnet, serving.Pipeline<VideoAnalyzePipeline>().Get("video@1")!.Embedding);
        var itemsBefore = resnet.Batcher.Items;
        var job = await ServingFixture.WaitForTerminalAsync(client, await SubmitAsync(client, Body(video, new { sample_fps = 4 })));
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal("video@1", job.GetProperty("model").GetString());
        Assert.Equal(1.0, job.GetProperty("progress").GetDouble());
        var result = job.GetProperty("output");
        output.WriteLine(result.ToString());

        Assert.InRange(result.GetProperty("duration_s").GetDouble(), 8.9, 9.1);
        Assert.InRange(result.GetProperty("frames_analyzed").GetInt32(), 35, 37);
        Assert.True(resnet.Batcher.Items - itemsBefore >= result.GetProperty("frames_analyzed").GetInt32());
        var shots = result.GetProperty("shots").EnumerateArray().ToArray();
        Assert.Equal(3, shots.Length);
        double[] starts = [0, 3.0, 5.5];
        double[] ends = [3.0, 5.5, 9.0];
        for (var i = 0; i < 3; i++)
        {
            Assert.InRange(shots[i].GetProperty("start_s").GetDouble(), starts[i] - 0.26, starts[i] + 0.26);
            Assert.InRange(shots[i].GetProperty("end_s").GetDouble(), ends[i] - 0.26, ends[i] + 0.26);
            Assert.InRange(shots[i].GetProperty("keyframe_s").GetDouble(), shots[i].GetProperty("start_s").GetDouble(), shots[i].GetProperty("end_s").GetDouble());
        }

        Assert.False(result.TryGetProperty("text", out _)); // only with params.ocr
    }

    [Theory]
    [InlineData(2)]
    [InlineData(10)]
    public async Task A_one_second_dissolve_is_one_boundary_at_its_middle(int fps)
    {
        // Scene A, then a 1 s dissolve centred on 5.0 s, then scene B: at 10 fps no single step is a cut.
        var video = await SceneVideos.DissolveAsync(71, 72, seconds: 5.0, transition: 1.0);
        using var client = serving.Client();
        var result = await SucceededAsync(client, await SubmitAsync(client, Body(video, new { sample_fps = fps })));
        output.WriteLine(result.ToString());

        var shots = result.GetProperty("shots").EnumerateArray().ToArray();
        Assert.Equal(2, shots.Length);
        Assert.InRange(shots[0].GetProperty("end_s").GetDouble(), 4.4, 5.6);
        Assert.True(shots[0].GetProperty("keyframe_s").GetDouble() < 4.5 && shots[1].GetProperty("keyframe_s").GetDouble() > 5.5,
            "keyframes should come from the scenes, not the dissolve");
    }

    [Fact]
    public async Task A_running_video_is_cancelled_and_its_ffmpeg_stopped()
    {
        // 40 s sampled at 10 fps: far longer to analyse than the test waits.
        var video = await TestVideos.ShotsAsync([(21, 20.0), (22, 20.0)], width: 320, height: 240);
        using var client = serving.Client();
        var id = await SubmitAsync(client, Body(video, new { sample_fps = 10 }));

        var deadline = DateTime.UtcNow + ServingFixture.JobWait;
        JsonElement job;
        do
        {
            Assert.True(DateTime.UtcNow < deadline, "the video never reported progress");
            await Task.Delay(100);
            job = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
        }
        while (job.GetProperty("progress").GetDouble() <= 0);
        Assert.Equal("running", job.GetProperty("status").GetString());
        Assert.True(TestVideos.FfmpegRunningFor(id), "ffmpeg should be decoding the job's video");

        var cancelledAt = Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync($"/v1/jobs/{id}/cancel", null)).StatusCode);
        job = await ServingFixture.WaitForTerminalAsync(client, id);
        output.WriteLine($"cancelled after {cancelledAt.ElapsedMilliseconds} ms at progress {job.GetProperty("progress").GetDouble()}");
        Assert.Equal("cancelled", job.GetProperty("status").GetString());
        Assert.True(job.GetProperty("progress").GetDouble() < 1);

        // The decoder is gone and the job's temporary file with it.
        var gone = Stopwatch.StartNew();
        while (TestVideos.FfmpegRunningFor(id) && gone.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(50);
        }

        Assert.False(TestVideos.FfmpegRunningFor(id), "ffmpeg still runs after the cancel");
        Assert.Empty(Directory.GetFiles(Path.Combine(Path.GetTempPath(), "async-serving-video"), $"{id}-*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task A_video_by_url_streams_its_progress_as_server_sent_events()
    {
        await using var server = await LocalImageServer.StartAsync();
        server.Video = await TestVideos.ShotsAsync([(24, 8.0), (25, 8.0)], width: 320, height: 240);
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Security:AllowPrivateNetworks"] = "true" });
        using var client = serving.Client(api);
        var id = await SubmitAsync(client, new
        {
            pipeline = "video.analyze",
            input = new { url = server.Url("/video.mp4").ToString() },
            @params = new { sample_fps = 10 },
        });

        using var stream = await client.GetStreamAsync($"/v1/jobs/{id}/events");
        using var reader = new StreamReader(stream);
        var events = new List<(string Type, JsonElement Job)>();
        string? type = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                type = line["event: ".Length..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add((type!, JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone()));
            }
        }

        Assert.Equal("completed", events[^1].Type);
        Assert.Equal("succeeded", events[^1].Job.GetProperty("status").GetString());
        Assert.Equal(2, events[^1].Job.GetProperty("output").GetProperty("shots").GetArrayLength());
        var progress = events.Where(e => e.Type == "progress").Select(e => e.Job.GetProperty("progress").GetDouble()).ToList();
        Assert.NotEmpty(progress);
        Assert.All(progress, p => Assert.InRange(p, 0.001, 0.99));
        Assert.Equal(progress.Order(), progress); // it only moves forward
    }

    [Fact]
    public async Task A_video_past_its_timeout_fails_with_timeout()
    {
        var video = await TestVideos.ShotsAsync([(23, 30.0)], width: 320, height: 240);
        using var client = serving.Client();
        var job = await ServingFixture.WaitForTerminalAsync(client, await SubmitAsync(client, Body(video, new { sample_fps = 10 }, timeout: 1)));
        Assert.Equal("failed", job.GetProperty("status").GetString());
        Assert.Equal("timeout", job.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task A_corrupt_video_fails_cleanly_while_other_jobs_go_on()
    {
        using var client = serving.Client();
        var corrupt = await SubmitAsync(client, Body(await TestVideos.CorruptAsync()));
        var good = await SubmitAsync(client, Body(await TestVideos.ShotsAsync([(31, 2.0), (32, 2.0)])));
        var image = await SubmitAsync(client, new
        {
            pipeline = "image.embed",
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(33, 320, 240)) },
        });

        var failed = await ServingFixture.WaitForTerminalAsync(client, corrupt);
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Equal("input_invalid", failed.GetProperty("error").GetProperty("code").GetString());
        var message = failed.GetProperty("error").GetProperty("message").GetString();
        Assert.Contains("not a decodable video", message, StringComparison.Ordinal);
        Assert.DoesNotContain("async-serving-video", message, StringComparison.Ordinal); // ffmpeg's words name "input", not the worker's file

        Assert.Equal(2, (await SucceededAsync(client, good)).GetProperty("shots").GetArrayLength());
        Assert.Equal(512, (await SucceededAsync(client, image)).GetProperty("dims").GetInt32());
    }

    [Fact]
    public async Task A_10_bit_4_4_4_video_is_analysed_as_its_8_bit_original_and_a_single_frame_is_a_video_of_one_shot()
    {
        // A camera's 10-bit or a screen recording's 4:4:4 footage decodes to more than 8 bits per
        // channel, and a still made into an MP4 is one frame shorter than half a sampling interval:
        // before, the first failed each attempt inside the worker and the second found no frame.
        var original = await TestVideos.ShotsAsync([(41, 2.0), (42, 2.0)]);
        var deep = await SceneVideos.TranscodeAsync(original, "mkv", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p10le");
        var still = await SceneVideos.TranscodeAsync(original, "mp4", "-frames:v", "1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p");
        using var client = serving.Client();
        var ids = new[] { original, deep, still }.Select(v => SubmitAsync(client, Body(v, new { sample_fps = 4 }))).ToArray();

        var (a, b, one) = (await SucceededAsync(client, await ids[0]), await SucceededAsync(client, await ids[1]), await SucceededAsync(client, await ids[2]));

        Assert.Equal(a.GetProperty("frames_analyzed").GetInt32(), b.GetProperty("frames_analyzed").GetInt32());
        var (shotsA, shotsB) = (a.GetProperty("shots").EnumerateArray().ToArray(), b.GetProperty("shots").EnumerateArray().ToArray());
        Assert.Equal(2, shotsA.Length);
        Assert.Equal(shotsA.Select(s => s.GetProperty("start_s").GetDouble()), shotsB.Select(s => s.GetProperty("start_s").GetDouble()));
        Assert.Equal(1, one.GetProperty("frames_analyzed").GetInt32());
        Assert.Single(one.GetProperty("shots").EnumerateArray());
    }

    [Fact]
    public async Task Bad_video_submits_are_refused_at_the_door()
    {
        using var client = serving.Client();
        var video = await TestVideos.ShotsAsync([(41, 1.0)]);

        var badParams = await client.PostAsJsonAsync("/v1/jobs", Body(video, new { sample_fps = 500, colour = "red" }));
        var problem = await Problems.AssertAsync(badParams, HttpStatusCode.BadRequest, "input_invalid");
        Assert.True(problem.GetProperty("errors").TryGetProperty("params.sample_fps", out _));
        Assert.True(problem.GetProperty("errors").TryGetProperty("params.colour", out _));

        var notVideo = await client.PostAsJsonAsync("/v1/jobs", Body(TestImages.Scene(42, 320, 240)));
        await Problems.AssertAsync(notVideo, HttpStatusCode.UnprocessableEntity, "input_invalid");

        await using var small = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Limits:MaxVideoBytes"] = "2048" });
        using var smallClient = serving.Client(small);
        await Problems.AssertAsync(await smallClient.PostAsJsonAsync("/v1/jobs", Body(video)), HttpStatusCode.RequestEntityTooLarge, "input_too_large");
    }

    [Fact]
    public async Task A_video_whose_header_declares_more_than_its_model_takes_is_refused_at_the_door()
    {
        using var models = new PrivateModels(video: true, maxVideoSeconds: 5);
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Models:Path"] = models.Path,
            ["Serving:Auth:DevelopmentTenant"] = "long-video-" + Guid.NewGuid().ToString("N")[..8],
        });
        using var client = serving.Client(api);
        var longer = await TestVideos.ShotsAsync([(43, 4.0), (44, 3.0)], width: 160, height: 120);

        var problem = await Problems.AssertAsync(
            await client.PostAsJsonAsync("/v1/jobs", new { pipeline = "video.analyze", model = models.VideoName, input = new { base64 = Convert.ToBase64String(longer) } }),
            HttpStatusCode.RequestEntityTooLarge, "input_too_large");
        Assert.Contains("declares 7 s", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, (await client.GetFromJsonAsync<JsonElement>("/v1/jobs")).GetProperty("data").GetArrayLength());

        // Within the limit it is queued (no worker serves this model, so it stays queued until cancelled).
        var shorter = await TestVideos.ShotsAsync([(45, 4.0)], width: 160, height: 120);
        var id = await SubmitAsync(client, new { pipeline = "video.analyze", model = models.VideoName, input = new { base64 = Convert.ToBase64String(shorter) } });
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync($"/v1/jobs/{id}/cancel", null)).StatusCode);
    }

    [Fact]
    public async Task A_redelivered_job_starts_over_from_no_progress_and_the_old_worker_cannot_report()
    {
        var store = serving.Api.Services.GetRequiredService<RedisJobStore>();
        var job = new JobRecord
        {
            Id = RedisJobStore.NewJobId(),
            TenantId = serving.Tenant,
            Status = JobStatuses.Queued,
            Pipeline = "video.analyze",
            Model = "video@1",
            CreatedAt = DateTimeOffset.UtcNow,
        };
        await store.CreateAsync(job, new byte[] { 1, 2, 3 });
        Assert.True((await store.TryStartAsync(job.Id, "worker-a")).Started);
        Assert.True(await store.SetProgressAsync(job.Id, 0.6, "worker-a"));
        Assert.Equal(0.6, (await store.GetAsync(job.Id))!.Progress);

        // worker-a died; the message is redelivered to worker-b.
        Assert.True((await store.TryStartAsync(job.Id, "worker-b")).Started);
        Assert.Equal(0, (await store.GetAsync(job.Id))!.Progress);
        Assert.False(await store.SetProgressAsync(job.Id, 0.7, "worker-a"));
        Assert.True(await store.SetProgressAsync(job.Id, 0.1, "worker-b"));
        Assert.True(await store.FailAsync(job.Id, JobErrorCodes.InternalError, "test cleanup"));
        Assert.False(await store.SetProgressAsync(job.Id, 0.2, "worker-b"));
    }
}
