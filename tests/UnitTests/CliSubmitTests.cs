using System.Text.Json;
using System.Text;
using Async.Serving.Cli;
using Async.Serving.Cli.Batches;
using Async.Serving.Cli.Submit;
using Spectre.Console;

namespace Async.Serving.UnitTests;

public sealed class CliSubmitTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("serving-cli-inputs-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Touch(string relative, string content = "x")
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    [Fact]
    public void A_folder_gives_its_images_and_videos_below_it_in_order_without_results_or_hidden_files()
    {
        Touch("photos/b.jpg");
        Touch("photos/a.PNG");
        Touch("photos/sub/c.webp");
        Touch("photos/clip.mp4");
        Touch("photos/a.PNG.image.embed.json");
        Touch("photos/notes.txt");
        File.SetAttributes(Touch("photos/.hidden.jpg"), FileAttributes.Hidden);

        var files = InputExpander.Expand(["photos"], _root);

        Assert.Equal(["a.PNG", "b.jpg", "clip.mp4", Path.Combine("sub", "c.webp")], files.Select(f => f.RelativePath));
        Assert.Equal([MediaKind.Image, MediaKind.Image, MediaKind.Video, MediaKind.Image], files.Select(f => f.Kind));
        Assert.All(files, f => Assert.True(Path.IsPathFullyQualified(f.FullPath)));
    }

    [Fact]
    public void Globs_match_recursively_from_their_base_and_each_file_comes_once()
    {
        Touch("in/x/1.jpg");
        Touch("in/y/2.jpg");
        Touch("in/y/3.png");
        var single = Touch("in/x/1.jpg");

        var files = InputExpander.Expand(["in/**/*.jpg", single, Path.Combine(_root, "in", "y", "*.png")], _root);

        Assert.Equal([Path.Combine("x", "1.jpg"), Path.Combine("y", "2.jpg"), "3.png"], files.Select(f => f.RelativePath));
        Assert.Equal(Path.Combine(_root, "in", "y", "2.jpg"), files[1].FullPath);
    }

    [Fact]
    public void An_argument_that_matches_nothing_is_a_usage_error_naming_it()
    {
        Directory.CreateDirectory(Path.Combine(_root, "empty"));
        Touch("empty/readme.txt");

        Assert.Contains("missing.jpg", Assert.Throws<CliUsageException>(() => InputExpander.Expand(["missing.jpg"], _root)).Message, StringComparison.Ordinal);
        Assert.Contains("*.gif", Assert.Throws<CliUsageException>(() => InputExpander.Expand(["*.gif"], _root)).Message, StringComparison.Ordinal);
        Assert.Contains("no image or video", Assert.Throws<CliUsageException>(() => InputExpander.Expand(["empty"], _root)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_key_depends_on_content_pipeline_model_and_params_but_not_on_the_order_of_params()
    {
        var content = new byte[32];
        var other = new byte[32];
        other[0] = 1;
        var key = SubmitKeys.Derive(content, "image.embed", null, Json("""{"a":1,"b":{"y":2,"x":[1,2]}}"""));

        Assert.Equal(key, SubmitKeys.Derive(content, "image.embed", null, Json("""{ "b": {"x":[1,2],"y":2}, "a": 1 }""")));
        Assert.NotEqual(key, SubmitKeys.Derive(other, "image.embed", null, Json("""{"a":1,"b":{"y":2,"x":[1,2]}}""")));
        Assert.NotEqual(key, SubmitKeys.Derive(content, "image.ocr", null, Json("""{"a":1,"b":{"y":2,"x":[1,2]}}""")));
        Assert.NotEqual(key, SubmitKeys.Derive(content, "image.embed", "resnet18", Json("""{"a":1,"b":{"y":2,"x":[1,2]}}""")));
        Assert.NotEqual(key, SubmitKeys.Derive(content, "image.embed", null, Json("""{"a":1,"b":{"y":2,"x":[2,1]}}""")));
        Assert.NotEqual(key, SubmitKeys.Derive(content, "image.embed", null, null));
        Assert.StartsWith(SubmitKeys.Prefix, key, StringComparison.Ordinal);
        Assert.True(key.Length <= 255 && key.All(c => c is >= ' ' and <= '~'));
    }

    [Fact]
    public async Task The_key_of_a_file_is_the_same_on_every_run_and_a_retry_key_follows_from_the_failed_job()
    {
        var path = Touch("a.jpg", "same bytes");
        var copy = Touch("b/copy.jpg", "same bytes");
        var first = SubmitKeys.Derive(await SubmitKeys.HashFileAsync(path, CancellationToken.None), "image.embed", null, null);

        Assert.Equal(first, SubmitKeys.Derive(await SubmitKeys.HashFileAsync(copy, CancellationToken.None), "image.embed", null, null));
        Assert.Equal(SubmitKeys.Retry(first, "job1"), SubmitKeys.Retry(first, "job1"));
        Assert.NotEqual(SubmitKeys.Retry(first, "job1"), SubmitKeys.Retry(first, "job2"));
        Assert.NotEqual(first, SubmitKeys.Retry(first, "job1"));
    }

    [Fact]
    public void Params_come_from_json_and_key_value_pairs_which_are_read_as_json_when_they_are()
    {
        var parameters = JobParameters.Parse("""{"sample_fps":2,"lang":"en"}""", ["sample_fps=4", "ocr=true", "label=cat", "list=[1,2]"])!.Value;

        Assert.Equal(4, parameters.GetProperty("sample_fps").GetInt32());
        Assert.True(parameters.GetProperty("ocr").GetBoolean());
        Assert.Equal("cat", parameters.GetProperty("label").GetString());
        Assert.Equal("en", parameters.GetProperty("lang").GetString());
        Assert.Equal(2, parameters.GetProperty("list").GetArrayLength());
        Assert.Null(JobParameters.Parse(null, []));
        Assert.Throws<CliUsageException>(() => JobParameters.Parse("[1]", []));
        Assert.Throws<CliUsageException>(() => JobParameters.Parse("{", []));
        Assert.Throws<CliUsageException>(() => JobParameters.Parse(null, ["novalue"]));
    }

    [Fact]
    public void Results_go_next_to_the_inputs_or_under_out_with_the_same_layout_and_existing_ones_are_skipped()
    {
        var photo = new InputFile(Path.Combine(_root, "photos", "sub", "a.jpg"), Path.Combine("sub", "a.jpg"));
        var clip = new InputFile(Path.Combine(_root, "photos", "clip.mp4"), "clip.mp4");
        var existing = Path.Combine(_root, "photos", "clip.mp4.video.analyze.json");

        var plan = SubmitPlan.Build([photo, clip], pipeline: null, model: null, outDirectory: null, force: false, p => p == existing);

        Assert.Equal(photo.FullPath + ".image.embed.json", plan[0].ResultPath);
        Assert.Equal(["image.embed", "video.analyze"], plan.Select(i => i.Pipeline));
        Assert.Equal([false, true], plan.Select(i => i.Skip));
        Assert.False(SubmitPlan.Build([clip], null, null, null, force: true, p => p == existing)[0].Skip);

        var outDir = Path.Combine(_root, "out");
        var intoOut = SubmitPlan.Build([photo, clip], "image.ocr", "ppocr@4", outDir, false, _ => false);
        Assert.Equal(Path.Combine(outDir, "sub", "a.jpg.image.ocr.json"), intoOut[0].ResultPath);
        Assert.All(intoOut, i => Assert.Equal(("image.ocr", "ppocr@4"), (i.Pipeline, i.Model)));
    }

    [Fact]
    public void A_plan_refuses_a_model_without_a_pipeline_a_file_of_unknown_kind_and_two_files_with_one_result()
    {
        var photo = new InputFile(Path.Combine(_root, "a", "x.jpg"), "x.jpg");
        var twin = new InputFile(Path.Combine(_root, "b", "x.jpg"), "x.jpg");
        var text = new InputFile(Path.Combine(_root, "notes.bin"), "notes.bin");

        Assert.Contains("--pipeline", Assert.Throws<CliUsageException>(() => SubmitPlan.Build([photo], null, "resnet18", null, false)).Message, StringComparison.Ordinal);
        var unknown = Assert.Throws<CliUsageException>(() => SubmitPlan.Build([text], null, null, null, false)).Message;
        Assert.Contains("notes.bin", unknown, StringComparison.Ordinal);
        Assert.Contains("JPEG, PNG, WebP, GIF or BMP", unknown, StringComparison.Ordinal);
        Assert.Contains("same result", Assert.Throws<CliUsageException>(() => SubmitPlan.Build([photo, twin], null, null, Path.Combine(_root, "out"), false)).Message,
            StringComparison.Ordinal);
        Assert.Equal(2, SubmitPlan.Build([photo, twin], null, null, null, false).Count); // next to their inputs they differ
        Assert.Single(SubmitPlan.Build([text], "image.embed", null, null, false));
    }

    [Fact]
    public void A_priority_changes_the_key_and_no_priority_keeps_the_key_of_a_run_without_it()
    {
        var content = new byte[32];
        var plain = SubmitKeys.Derive(content, "image.embed", "resnet18", null);

        // The key of earlier runs (without --priority, or before it existed), computed as it was then.
        var before = SubmitKeys.Prefix + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            Encoding.UTF8.GetBytes(string.Join('\n', Convert.ToHexStringLower(content), "image.embed", "resnet18", string.Empty))));
        Assert.Equal(before, plain);
        Assert.Equal(plain, SubmitKeys.Derive(content, "image.embed", "resnet18", null, priority: null));
        var high = SubmitKeys.Derive(content, "image.embed", "resnet18", null, "high");
        Assert.NotEqual(plain, high);
        Assert.NotEqual(high, SubmitKeys.Derive(content, "image.embed", "resnet18", null, "low"));
        Assert.Equal(high, SubmitKeys.Derive(content, "image.embed", "resnet18", null, "high"));
    }

    [Fact]
    public async Task Batch_priority_is_added_to_each_line_that_names_none_and_every_other_line_passes_unchanged()
    {
        string[] lines =
        [
            """{"custom_id":"a","pipeline":"image.embed"}""",
            """  { "custom_id": "b", "priority": "low", "params": {"priority": 1} }""",
            "",
            """{"custom_id":"c","params":{"priority":"x"}}""" + "\r",
            "not json",
            "[1,2]",
            "{}",
            """{"custom_id":"d"} trailing""",
            """{"custom_id":"e","input":{"base64":"AAAA"}}""",
        ];
        var input = new MemoryStream(Encoding.UTF8.GetBytes(string.Join('\n', lines)));

        var rewritten = BatchLinePriority.Apply(input, "high", CancellationToken.None);
        var text = await new StreamReader(rewritten, Encoding.UTF8).ReadToEndAsync();

        string[] expected =
        [
            """{"priority":"high","custom_id":"a","pipeline":"image.embed"}""",
            """  { "custom_id": "b", "priority": "low", "params": {"priority": 1} }""",
            "",
            """{"priority":"high","custom_id":"c","params":{"priority":"x"}}""" + "\r",
            "not json",
            "[1,2]",
            """{"priority":"high"}""",
            """{"custom_id":"d"} trailing""",
            """{"priority":"high","custom_id":"e","input":{"base64":"AAAA"}}""",
        ];
        Assert.Equal(string.Join('\n', expected), text);
        Assert.Throws<ArgumentException>(() => BatchLinePriority.Apply(new MemoryStream(), "urgent", CancellationToken.None));
    }

    [Fact]
    public async Task Batch_priority_copies_a_file_larger_than_the_pipes_buffers_line_for_line()
    {
        var padding = new string('a', 100_000); // each line spans several reads
        var lines = Enumerable.Range(0, 50).Select(i => $"{{\"custom_id\":\"l{i}\",\"pad\":\"{padding}\"}}").ToList();
        var input = new MemoryStream(Encoding.UTF8.GetBytes(string.Join('\n', lines) + "\n"));

        var text = await new StreamReader(BatchLinePriority.Apply(input, "low", CancellationToken.None), Encoding.UTF8).ReadToEndAsync();

        var output = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(50, output.Length);
        Assert.All(output.Select((l, i) => (l, i)), x =>
        {
            var line = JsonDocument.Parse(x.l).RootElement;
            Assert.Equal("low", line.GetProperty("priority").GetString());
            Assert.Equal($"l{x.i}", line.GetProperty("custom_id").GetString());
            Assert.Equal(padding.Length, line.GetProperty("pad").GetString()!.Length);
        });
    }

    [Fact]
    public void Without_a_terminal_each_file_that_ends_gets_one_counted_line_with_a_failures_code_and_message()
    {
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(TextWriter.Synchronized(output)),
        });
        var progress = SubmitProgress.Lines(console, 12);

        Parallel.For(0, 11, i => progress.FileDone(new FileOutcome { File = $"f{i:D2}.jpg", Pipeline = "image.embed", Status = "succeeded" }));
        progress.FileDone(new FileOutcome
        {
            File = "bad.jpg",
            Pipeline = "image.embed",
            Status = "failed",
            ErrorCode = "input_invalid",
            ErrorMessage = "not an image:\nno decoder",
        });

        var lines = output.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(12, lines.Length);
        Assert.Equal([.. Enumerable.Range(1, 12).Select(i => $"[{i,2}/12]")], lines.Select(l => l[..7]));
        Assert.Equal(11, lines.Take(11).Count(l => l.EndsWith(".jpg: succeeded", StringComparison.Ordinal)));
        Assert.Equal(11, lines.Take(11).Select(l => l[8..11]).Distinct().Count());
        Assert.Equal("[12/12] bad.jpg: failed input_invalid: not an image: no decoder", lines[11]);
        Assert.Null(progress.Job("clip.mp4")); // no bars in a log
    }

    [Fact]
    public void A_file_is_named_relative_to_the_current_directory_when_under_it_and_by_its_full_path_otherwise()
    {
        var here = Path.Combine(_root, "work");
        Assert.Equal(Path.Combine("photos", "cat.jpg"), SubmitRun.DisplayPath(here, Path.Combine(here, "photos", "cat.jpg")));
        Assert.Equal(Path.Combine(here, "..photos", "cat.jpg")[(here.Length + 1)..], SubmitRun.DisplayPath(here, Path.Combine(here, "..photos", "cat.jpg")));
        Assert.Equal(Path.Combine(_root, "elsewhere", "cat.jpg"), SubmitRun.DisplayPath(here, Path.Combine(_root, "elsewhere", "cat.jpg")));
    }
}
