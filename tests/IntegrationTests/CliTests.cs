using System.Text.Json;
using Async.Serving.Api.Auth;
using Async.Serving.Cli;
using Async.Serving.Client;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// <c>serving</c>, the command-line tool, run in-process against the real stack: a folder of images
/// and a video with progress and result files, Ctrl-C and a rerun that resumes without submitting
/// anything twice, <c>--json</c> for scripts, problem codes and exit codes.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class CliTests(ServingFixture serving, ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("serving-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>An admin key of a tenant of its own, so that the test can count every job made with it.</summary>
    private async Task<string> NewTenantKeyAsync()
    {
        var store = serving.Api.Services.GetRequiredService<ApiKeyStore>();
        var created = await store.CreateAsync($"cli-{Guid.NewGuid():N}"[..16], "cli", expiresAt: null, CancellationToken.None);
        return created.Key;
    }

    /// <summary>Small photo-like JPEGs; the seeds differ per test so that no two tests share content (and so idempotency keys).</summary>
    private string WriteImages(string folder, int count, int firstSeed)
    {
        var path = Directory.CreateDirectory(Path.Combine(_dir, folder)).FullName;
        for (var i = 0; i < count; i++)
        {
            File.WriteAllBytes(Path.Combine(path, $"img{i:D3}.jpg"), TestImages.Scene(firstSeed + i, 160, 120));
        }

        return path;
    }

    private static string[] Results(string folder, string pipeline) =>
        [.. Directory.EnumerateFiles(folder, $"*.{pipeline}.json", SearchOption.AllDirectories).Order(StringComparer.Ordinal)];

    private static JsonElement ReadJson(string path) => JsonDocument.Parse(File.ReadAllText(path)).RootElement;

    private static async Task<List<Job>> JobsOfAsync(ServingClient client)
    {
        var jobs = new List<Job>();
        await foreach (var job in client.ListAllAsync(new JobQuery(Limit: 100)))
        {
            jobs.Add(job);
        }

        return jobs;
    }

    [Fact]
    public async Task A_folder_of_50_images_and_a_video_are_submitted_with_progress_and_each_result_is_written_next_to_its_input()
    {
        var photos = WriteImages("photos", 50, firstSeed: 5100);
        await File.WriteAllBytesAsync(Path.Combine(photos, "clip.mp4"), await TestVideos.ShotsAsync([(5171, 1.5), (5172, 1.5)]));

        var run = await new CliRunner(serving, _dir).RunAsync("submit", "photos", "-j", "8", "--param", "sample_fps=4");
        log.WriteLine(run.Out);
        log.WriteLine(run.Error);

        Assert.Equal(ExitCodes.Ok, run.ExitCode);
        var images = Results(photos, "image.embed");
        Assert.Equal(50, images.Length);
        Assert.Equal(Path.Combine(photos, "img000.jpg.image.embed.json"), images[0]);
        var image = ReadJson(images[0]);
        Assert.Equal("succeeded", image.GetProperty("status").GetString());
        Assert.Equal("image.embed", image.GetProperty("pipeline").GetString());
        Assert.Equal(512, image.GetProperty("output").GetProperty("embedding").GetArrayLength());

        var video = ReadJson(Assert.Single(Results(photos, "video.analyze")));
        Assert.Equal("succeeded", video.GetProperty("status").GetString());
        Assert.Equal(2, video.GetProperty("output").GetProperty("shots").GetArrayLength());
        Assert.Equal(4, video.GetProperty("output").GetProperty("sample_fps").GetDouble());

        // Not a terminal: a line for every file as it ends, counted, then the summary.
        var lines = run.Out.Split('\n');
        Assert.Equal(51, lines.Count(l => l.StartsWith('[') && l.EndsWith(": succeeded", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.StartsWith("[51/51] ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.EndsWith(" photos/clip.mp4: succeeded", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.EndsWith(" photos/img049.jpg: succeeded", StringComparison.Ordinal));
        Assert.Matches(@"│ 51\s+│ 51\s+│ 0\s+│ 0\s+│ 0\s+│", run.Out);
        Assert.Empty(run.Error);

        // A second run finds every result and sends nothing.
        var again = await new CliRunner(serving, _dir).RunAsync("submit", "photos", "--param", "sample_fps=4", "--json");
        Assert.Equal(ExitCodes.Ok, again.ExitCode);
        var summary = JsonDocument.Parse(again.Out).RootElement;
        Assert.Equal(51, summary.GetProperty("skipped").GetInt32());
        Assert.Equal(0, summary.GetProperty("succeeded").GetInt32());
    }

    [Fact]
    public async Task On_a_terminal_the_run_shows_an_overall_bar_and_a_bar_for_each_video_and_no_file_lines()
    {
        var media = WriteImages("terminal", 2, firstSeed: 5700);
        await File.WriteAllBytesAsync(Path.Combine(media, "clip.mp4"), await TestVideos.ShotsAsync([(5771, 1.0), (5772, 1.0)]));

        var run = await new CliRunner(serving, _dir) { Terminal = true }.RunAsync("submit", "terminal", "--param", "sample_fps=4");
        log.WriteLine(run.Out);

        Assert.Equal(ExitCodes.Ok, run.ExitCode);
        Assert.Equal(2, Results(media, "image.embed").Length);
        Assert.Single(Results(media, "video.analyze"));
        // The bars' last frame stays on screen: the whole run done, and the video's bar with its final status.
        Assert.Contains("3 file(s)", run.Out, StringComparison.Ordinal);
        Assert.Contains("terminal/clip.mp4 succeeded", run.Out, StringComparison.Ordinal);
        Assert.Contains("100%", run.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("[1/3]", run.Out, StringComparison.Ordinal);
        Assert.Empty(run.Error);
    }

    [Fact]
    public async Task A_run_interrupted_midway_is_resumed_by_a_rerun_that_submits_no_file_twice()
    {
        var key = await NewTenantKeyAsync();
        var photos = WriteImages("batch", 50, firstSeed: 5200);

        // Ctrl-C as the CLI sees it: the token is cancelled, here once the API has answered ten submits.
        using var interrupt = new CancellationTokenSource();
        var submits = 0;
        var first = await new CliRunner(serving, _dir, key, () => new SubmitWatcher(() =>
        {
            if (Interlocked.Increment(ref submits) == 10)
            {
                interrupt.Cancel();
            }
        })).RunAsync(interrupt.Token, "submit", "batch", "-j", "4");
        log.WriteLine(first.Out);
        log.WriteLine(first.Error);

        Assert.Equal(ExitCodes.Interrupted, first.ExitCode);
        Assert.Contains("interrupted", first.Error, StringComparison.Ordinal);
        var afterFirst = Results(photos, "image.embed").Length;
        Assert.InRange(afterFirst, 0, 13); // at most the ten answered and three more in flight
        Assert.Empty(Directory.EnumerateFiles(photos, "*.partial"));

        var rerun = await new CliRunner(serving, _dir, key).RunAsync("submit", "batch", "-j", "4", "--json");
        log.WriteLine(rerun.Out);

        Assert.Equal(0, rerun.ExitCode);
        var summary = JsonDocument.Parse(rerun.Out).RootElement;
        Assert.Equal(50, summary.GetProperty("total").GetInt32());
        Assert.Equal(afterFirst, summary.GetProperty("skipped").GetInt32());
        Assert.Equal(50 - afterFirst, summary.GetProperty("succeeded").GetInt32());
        Assert.Equal(0, summary.GetProperty("failed").GetInt32());
        var results = Results(photos, "image.embed");
        Assert.Equal(50, results.Length);

        // Every file made exactly one job: the rerun attached to the jobs the first run had submitted.
        using var client = new ServingClient(serving.Client(key: key));
        var jobs = await JobsOfAsync(client);
        Assert.Equal(50, jobs.Count);
        Assert.Equal(
            jobs.Select(j => j.Id).Order(StringComparer.Ordinal),
            results.Select(r => ReadJson(r).GetProperty("id").GetString()!).Order(StringComparer.Ordinal));
        var files = summary.GetProperty("files").EnumerateArray().ToList();
        Assert.All(files.Where(f => f.GetProperty("status").GetString() == "succeeded"),
            f => Assert.Contains(f.GetProperty("job_id").GetString(), jobs.Select(j => j.Id)));
    }

    [Fact]
    public async Task Json_output_parses_for_scripts()
    {
        var key = await NewTenantKeyAsync();
        var photo = Path.Combine(_dir, "one.jpg");
        await File.WriteAllBytesAsync(photo, TestImages.Scene(5301, 160, 120));
        var cli = new CliRunner(serving, _dir, key);

        var submitted = await cli.RunAsync("submit", "one.jpg", "--pipeline", "image.embed", "--model", "resnet18", "--json");
        Assert.Equal(0, submitted.ExitCode);
        var id = JsonDocument.Parse(submitted.Out).RootElement.GetProperty("files")[0].GetProperty("job_id").GetString()!;

        var get = JsonDocument.Parse((await cli.RunAsync("get", id, "--json")).Out).RootElement;
        Assert.Equal("succeeded", get.GetProperty("status").GetString());
        Assert.Equal("resnet18@1", get.GetProperty("model").GetString());
        Assert.Equal(512, get.GetProperty("output").GetProperty("dims").GetInt32());

        var jobs = JsonDocument.Parse((await cli.RunAsync("jobs", "--status", "succeeded", "--json")).Out).RootElement.GetProperty("data");
        Assert.Equal(id, Assert.Single(jobs.EnumerateArray()).GetProperty("id").GetString());

        var models = JsonDocument.Parse((await cli.RunAsync("models", "--json")).Out).RootElement.GetProperty("data");
        Assert.Contains(models.EnumerateArray(), m => m.GetProperty("id").GetString() == "resnet18@1");

        var usage = JsonDocument.Parse((await cli.RunAsync("usage", "--json")).Out).RootElement;
        Assert.Equal(JsonValueKind.Array, usage.GetProperty("data").ValueKind);

        var created = JsonDocument.Parse((await cli.RunAsync("keys", "create", "--name", "ci", "--json")).Out).RootElement;
        var keyId = created.GetProperty("id").GetString()!;
        Assert.StartsWith(ApiKeyStore.Prefix, created.GetProperty("key").GetString(), StringComparison.Ordinal);
        var keys = JsonDocument.Parse((await cli.RunAsync("keys", "list", "--json")).Out).RootElement.GetProperty("data");
        Assert.Contains(keys.EnumerateArray(), k => k.GetProperty("id").GetString() == keyId);
        Assert.Equal(0, (await cli.RunAsync("keys", "revoke", keyId)).ExitCode);

        var secret = JsonDocument.Parse((await cli.RunAsync("webhooks", "secret", "--json")).Out).RootElement;
        Assert.StartsWith("whsec_", secret.GetProperty("secret").GetString(), StringComparison.Ordinal);
        var deliveries = JsonDocument.Parse((await cli.RunAsync("webhooks", "deliveries", "--json")).Out).RootElement;
        Assert.Empty(deliveries.GetProperty("data").EnumerateArray());

        // For people: the same as tables.
        var table = await cli.RunAsync("jobs");
        Assert.Contains(id, table.Out, StringComparison.Ordinal);
        Assert.Contains("succeeded", table.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_priority_reaches_the_job_and_a_rerun_with_another_priority_is_another_job_not_a_mismatch()
    {
        var key = await NewTenantKeyAsync();
        var photo = Path.Combine(_dir, "urgent.jpg");
        await File.WriteAllBytesAsync(photo, TestImages.Scene(5601, 160, 120));
        var cli = new CliRunner(serving, _dir, key);
        using var client = new ServingClient(serving.Client(key: key));
        async Task<string> SubmitAsync(params string[] options)
        {
            var run = await cli.RunAsync(["submit", "urgent.jpg", "--force", "--json", .. options]);
            Assert.True(run.ExitCode == 0, run.Out + run.Error);
            var file = Assert.Single(JsonDocument.Parse(run.Out).RootElement.GetProperty("files").EnumerateArray());
            Assert.Equal("succeeded", file.GetProperty("status").GetString());
            return file.GetProperty("job_id").GetString()!;
        }

        var high = await SubmitAsync("--priority", "high");
        Assert.Equal("high", (await client.GetAsync(high)).Priority);
        Assert.Equal("high", ReadJson(photo + ".image.embed.json").GetProperty("priority").GetString());

        // The priority is part of the request the API's key remembers, and so of the CLI's key: the
        // same file with another priority is another job, not 422 idempotency_mismatch.
        var low = await SubmitAsync("--priority", "low");
        Assert.NotEqual(high, low);
        Assert.Equal("low", (await client.GetAsync(low)).Priority);

        // The first priority again: the first run's key, so its job back, not a third one.
        Assert.Equal(high, await SubmitAsync("--priority", "high"));
        Assert.Equal(2, (await JobsOfAsync(client)).Count);

        // None: the tenant's default, and a key of its own.
        var none = await SubmitAsync();
        Assert.Equal("normal", (await client.GetAsync(none)).Priority);
        Assert.Equal(3, (await JobsOfAsync(client)).Count);

        var refused = await cli.RunAsync("submit", "urgent.jpg", "--force", "--priority", "urgent");
        Assert.Equal(ExitCodes.Usage, refused.ExitCode);
        Assert.Contains("--priority must be low, normal or high", refused.Error, StringComparison.Ordinal);
        Assert.Equal(3, (await JobsOfAsync(client)).Count);
    }

    [Fact]
    public async Task A_problem_code_reaches_the_user_with_a_non_zero_exit_code()
    {
        var cli = new CliRunner(serving, _dir);

        var missing = await cli.RunAsync("get", "no-such-job");
        Assert.Equal(3, missing.ExitCode);
        Assert.Contains("not_found (404)", missing.Error, StringComparison.Ordinal);

        var asJson = await cli.RunAsync("get", "no-such-job", "--json");
        Assert.Equal(3, asJson.ExitCode);
        Assert.Equal("not_found", JsonDocument.Parse(asJson.Out).RootElement.GetProperty("error").GetProperty("code").GetString());

        var photo = Path.Combine(_dir, "p.jpg");
        await File.WriteAllBytesAsync(photo, TestImages.Scene(5401, 96, 96));
        var unknown = await cli.RunAsync("submit", "p.jpg", "--pipeline", "image.nope");
        Assert.Equal(3, unknown.ExitCode);
        Assert.Contains("unknown_pipeline", unknown.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(photo + ".image.nope.json"));

        var badKey = await new CliRunner(serving, _dir, apiKey: "sk_wrong").RunAsync("models");
        Assert.Equal(3, badKey.ExitCode);
        Assert.Contains("unauthorized (401)", badKey.Error, StringComparison.Ordinal);

        // A file the API refuses is that file's failure: the others go on, and the exit code says so.
        await File.WriteAllBytesAsync(Path.Combine(_dir, "broken.jpg"), TestImages.TruncatedJpeg()[..40]);
        var mixed = await cli.RunAsync("submit", "p.jpg", "broken.jpg", "--json");
        Assert.Equal(1, mixed.ExitCode);
        var files = JsonDocument.Parse(mixed.Out).RootElement.GetProperty("files").EnumerateArray().ToList();
        Assert.Equal("succeeded", files.Single(f => f.GetProperty("file").GetString() == "p.jpg").GetProperty("status").GetString());
        var broken = files.Single(f => f.GetProperty("file").GetString() == "broken.jpg");
        Assert.NotEqual("succeeded", broken.GetProperty("status").GetString());
        Assert.False(string.IsNullOrEmpty(broken.GetProperty("error_code").GetString()));

        // Not a terminal: the file's line carries its status, code and message.
        var line = await cli.RunAsync("submit", "broken.jpg");
        Assert.Equal(1, line.ExitCode);
        Assert.Matches(
            $@"^\[1/1\] broken\.jpg: {broken.GetProperty("status").GetString()} {broken.GetProperty("error_code").GetString()}: \S",
            line.Out.Split('\n')[0]);

        var usage = await cli.RunAsync("submit");
        Assert.Equal(2, usage.ExitCode);
    }

    [Fact]
    public async Task Watch_follows_a_video_to_its_end_and_cancelling_it_then_is_a_conflict()
    {
        var key = await NewTenantKeyAsync();
        using var client = new ServingClient(serving.Client(key: key));
        var video = await TestVideos.ShotsAsync([(5501, 2.0), (5502, 2.0)]);
        var job = await client.SubmitAsync(new SubmitRequest
        {
            Pipeline = "video.analyze",
            Model = "video",
            Input = JobInput.FromBytes(video, "clip.mp4"),
            Params = JsonDocument.Parse("""{"sample_fps":4}""").RootElement,
        });
        var cli = new CliRunner(serving, _dir, key);

        var watched = await cli.RunAsync("watch", job.Id, "--json");
        Assert.Equal(0, watched.ExitCode);
        var events = watched.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal("succeeded", events[^1].GetProperty("job").GetProperty("status").GetString());
        Assert.Equal(1.0, events[^1].GetProperty("job").GetProperty("progress").GetDouble());

        var table = await cli.RunAsync("watch", job.Id);
        Assert.Equal(0, table.ExitCode);
        // Not a terminal: a line for the step it saw (the job had ended), then the job.
        Assert.StartsWith($"{job.Id} succeeded 100%", table.Out, StringComparison.Ordinal);
        Assert.Contains("2 shot(s)", table.Out, StringComparison.Ordinal);

        var ended = await cli.RunAsync("cancel", job.Id);
        Assert.Equal(3, ended.ExitCode);
        Assert.Contains("conflict (409)", ended.Error, StringComparison.Ordinal);
    }

    /// <summary>Calls back after each submit the API answered.</summary>
    private sealed class SubmitWatcher(Action submitted) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            if (request.Method == HttpMethod.Post && request.RequestUri?.AbsolutePath == "/v1/jobs")
            {
                submitted();
            }

            return response;
        }
    }
}
