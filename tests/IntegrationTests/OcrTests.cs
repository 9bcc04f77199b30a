using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Async.Serving.Fixtures;
using Async.Serving.Worker.Observability;
using Async.Serving.Worker.Ocr;
using Xunit.Abstractions;

namespace Async.Serving.IntegrationTests;

/// <summary><c>image.ocr</c> through the API and the fixture's worker, and on-screen text in <c>video.analyze</c>.</summary>
[Collection(ServingCollection.Name)]
public sealed class OcrTests(ServingFixture serving, ITestOutputHelper output)
{
    private static object Body(byte[] image) => new { pipeline = "image.ocr", input = new { base64 = Convert.ToBase64String(image) } };

    private async Task<JsonElement> ReadAsync(HttpClient client, byte[] image)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs?wait=60", Body(image));
        var job = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        Assert.Equal("ppocr@4", job.GetProperty("model").GetString());
        output.WriteLine(job.GetProperty("output").ToString());
        return job.GetProperty("output");
    }

    private static string[] Texts(JsonElement result) =>
        [.. result.GetProperty("lines").EnumerateArray().Select(l => l.GetProperty("text").GetString()!)];

    [Fact]
    public async Task A_rendered_line_is_read_back_exactly_with_its_box()
    {
        using var client = serving.Client();
        var image = TextImages.Line("Invoice 2026-0412 due on 15 May", size: 40, font: TextImages.Serif, format: SkiaSharp.SKEncodedImageFormat.Jpeg);
        var result = await ReadAsync(client, image);

        var line = Assert.Single(result.GetProperty("lines").EnumerateArray());
        Assert.Equal("Invoice 2026-0412 due on 15 May", line.GetProperty("text").GetString());
        Assert.InRange(line.GetProperty("confidence").GetDouble(), 0.8, 1.0);
        var (width, height) = (result.GetProperty("width").GetInt32(), result.GetProperty("height").GetInt32());
        var box = line.GetProperty("box").EnumerateArray().Select(p => (X: p[0].GetInt32(), Y: p[1].GetInt32())).ToArray();
        Assert.Equal(4, box.Length);
        // The line fills the image but for its 24 px padding.
        Assert.InRange(box.Min(p => p.X), 10, 40);
        Assert.InRange(box.Max(p => p.X), width - 40, width - 10);
        Assert.InRange(box.Min(p => p.Y), 5, 40);
        Assert.InRange(box.Max(p => p.Y), height - 40, height - 5);
    }

    [Fact]
    public async Task A_photographed_page_is_read_in_reading_order()
    {
        using var client = serving.Client();
        var (jpeg, expected) = TextImages.PhotographedPage();
        var result = await ReadAsync(client, jpeg);
        var read = Texts(result);
        Assert.Equal((2000, 1500), (result.GetProperty("width").GetInt32(), result.GetProperty("height").GetInt32()));

        var accuracy = WordAccuracy(expected, read);
        output.WriteLine($"word accuracy {accuracy:P1} over {expected.Sum(l => l.Split(' ').Length)} words");
        Assert.True(accuracy >= 0.9, $"word accuracy {accuracy:P1}: {string.Join(" | ", read)}");
        // Reading order: the title comes first, the closing line last.
        Assert.Contains("Quarterly", read[0], StringComparison.Ordinal);
        Assert.Contains("safe", read[^1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_dense_page_in_a_12_megapixel_photo_is_read_after_a_finer_detection_pass()
    {
        // 30 lines of small type on a 4000×3000 photo: at the first detection scale (longer side
        // 1280) the lines are about 16 detector pixels high, so detection runs again finer.
        using var client = serving.Client();
        var (jpeg, expected) = TextImages.PhotographedPage(seed: 2, scale: 2, copies: 3);
        var result = await ReadAsync(client, jpeg);
        var read = Texts(result);
        var accuracy = WordAccuracy(expected, read);
        output.WriteLine($"word accuracy {accuracy:P1} over {expected.Sum(l => l.Split(' ').Length)} words, {read.Length} lines");
        Assert.Equal(30, read.Length);
        Assert.True(accuracy >= 0.85, $"word accuracy {accuracy:P1}: {string.Join(" | ", read)}");
    }

    [Fact]
    public async Task A_27_megapixel_photo_is_read_scaled_down_with_boxes_in_its_own_pixels()
    {
        using var client = serving.Client();
        var (jpeg, expected) = TextImages.PhotographedPage(seed: 3, scale: 3);
        var result = await ReadAsync(client, jpeg);
        Assert.Equal((6000, 4500), (result.GetProperty("width").GetInt32(), result.GetProperty("height").GetInt32()));
        Assert.True(WordAccuracy(expected, Texts(result)) >= 0.9);
        // The page spans x ≈ 690–5340 in the photo; read at 4096 wide, the boxes are scaled back.
        var xs = result.GetProperty("lines").EnumerateArray().SelectMany(l => l.GetProperty("box").EnumerateArray()).Select(p => p[0].GetInt32()).ToList();
        Assert.InRange(xs.Max(), 4200, 5999);
        Assert.InRange(xs.Min(), 600, 1600);
    }

    [Fact]
    public async Task Concurrent_jobs_share_the_detector_and_recogniser_batches_and_a_broken_image_fails_alone()
    {
        using var client = serving.Client();
        var ocr = serving.Pipeline<ImageOcrPipeline>().Get("ppocr@4")!;
        var (batchesBefore, itemsBefore) = (ocr.Batchers.Sum(b => b.Batches), ocr.Batchers.Sum(b => b.Items));
        var (detBatchesBefore, detItemsBefore) = (ocr.Detector.Batches, ocr.Detector.Items);
        var detMetric = WorkerMetrics.OcrDetectionBatchSize.WithLabels("ppocr@4");
        var (metricCountBefore, metricSumBefore) = (detMetric.Count, detMetric.Sum);
        var pages = Enumerable.Range(0, 6).Select(i => TextImages.Page(900, 300,
        [
            new TextImages.TextLine($"Order {1000 + i} shipped today", 30, 30),
            new TextImages.TextLine($"Parcel weight {i + 2} kg", 30, 110),
            new TextImages.TextLine("Thank you for your order", 30, 190),
        ]).Image).ToList();

        var broken = TestImages.TruncatedJpeg();
        var jobs = await Task.WhenAll(pages.Append(broken).Select(async image =>
        {
            var response = await client.PostAsJsonAsync("/v1/jobs", Body(image));
            await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
            return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        }));
        var finished = await Task.WhenAll(jobs.Select(id => ServingFixture.WaitForTerminalAsync(client, id)));

        for (var i = 0; i < pages.Count; i++)
        {
            Assert.Equal("succeeded", finished[i].GetProperty("status").GetString());
            Assert.Equal(
                [$"Order {1000 + i} shipped today", $"Parcel weight {i + 2} kg", "Thank you for your order"],
                Texts(finished[i].GetProperty("output")));
        }

        Assert.Equal("failed", finished[^1].GetProperty("status").GetString());
        Assert.Equal("input_invalid", finished[^1].GetProperty("error").GetProperty("code").GetString());
        var batches = ocr.Batchers.Sum(b => b.Batches) - batchesBefore;
        var items = ocr.Batchers.Sum(b => b.Items) - itemsBefore;
        output.WriteLine($"{items} recogniser and classifier items in {batches} batches");
        Assert.True(items > batches, $"{items} items in {batches} batches: no crops were batched together");

        // The pages are the same size: jobs that wait for the detector together run as one batch.
        var (detBatches, detItems) = (ocr.Detector.Batches - detBatchesBefore, ocr.Detector.Items - detItemsBefore);
        output.WriteLine($"{detItems} detections in {detBatches} detector runs");
        Assert.True(detItems > detBatches, $"{detItems} detections in {detBatches} runs: no two jobs shared a detector run");
        Assert.Equal(detBatches, detMetric.Count - metricCountBefore);
        Assert.Equal(detItems, detMetric.Sum - metricSumBefore);
    }

    [Fact]
    public async Task On_screen_text_is_found_in_the_right_time_window()
    {
        // One 8 s shot; the caption is on screen from 2 s to 5 s.
        var video = await TestVideos.ShotsAsync([(61, 8.0)], caption: "SALE ENDS FRIDAY", from: 2.0, to: 5.0, width: 640, height: 360);
        using var client = serving.Client();
        var response = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "video.analyze",
            input = new { base64 = Convert.ToBase64String(video) },
            @params = new { sample_fps = 2, ocr = true },
        });
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        var job = await ServingFixture.WaitForTerminalAsync(client, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        var result = job.GetProperty("output");
        output.WriteLine(result.ToString());

        Assert.Equal(1, result.GetProperty("shots").GetArrayLength()); // a caption appearing is not a cut
        var segment = Assert.Single(result.GetProperty("text").EnumerateArray());
        Assert.Equal("SALE ENDS FRIDAY", segment.GetProperty("text").GetString());
        // Sampled every 0.5 s: seen first at 2.0 s, last at 4.5 s (or 5.0 s, the frame at the edge), ending one interval later.
        Assert.InRange(segment.GetProperty("start_s").GetDouble(), 1.5, 2.5);
        Assert.InRange(segment.GetProperty("end_s").GetDouble(), 4.5, 5.5);
    }

    /// <summary>
    /// Share of the expected words found in the text read, in order: the longest common subsequence
    /// of the two word sequences over the expected count (a garbled line costs its own words only).
    /// </summary>
    internal static double WordAccuracy(IReadOnlyList<string> expected, IReadOnlyList<string> read)
    {
        var a = expected.SelectMany(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToArray();
        var b = read.SelectMany(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToArray();
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = a[i - 1] == b[j - 1] ? previous[j - 1] + 1 : Math.Max(previous[j], current[j - 1]);
            }

            (previous, current) = (current, previous);
        }

        return (double)previous[b.Length] / a.Length;
    }
}
