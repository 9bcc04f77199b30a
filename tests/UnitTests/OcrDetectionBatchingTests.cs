using Async.Serving.Models;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Inference;
using Async.Serving.Worker.Ocr;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Async.Serving.UnitTests;

/// <summary>
/// Detection batched across images, on the real PP-OCRv4 detector and the real evaluation images
/// (scikit-image's page photo, the same upscaled 3×, the dense paragraph: see <see cref="OcrRealImageTests"/>).
/// </summary>
[Collection(OcrModelCollection.Name)]
public sealed class OcrDetectionBatchingTests(OcrModelFixture fixture, ITestOutputHelper output)
{
    private static readonly string[] Names = ["skimage-page", "skimage-page-x3", "skimage-bw-text"];

    /// <summary>
    /// The three images (three detection sizes), each also mirrored and turned 180° (other text
    /// at the same size) and scaled by 0.97 (another image size, the same detection size).
    /// </summary>
    private static async Task<List<(string Name, RgbImage Image)>> ImagesAsync()
    {
        var images = new List<(string Name, RgbImage Image)>();
        foreach (var name in Names)
        {
            var original = RgbImage.Decode(await File.ReadAllBytesAsync(OcrRealImageTests.ImagePath(name)), long.MaxValue);
            images.Add((name, original));
            images.Add((name + " mirrored", Transform(original, (x, y) => (original.Width - 1 - x, y))));
            images.Add((name + " turned 180°", Transform(original, (x, y) => (original.Width - 1 - x, original.Height - 1 - y))));
            var (w, h) = ((int)(original.Width * 0.97), (int)(original.Height * 0.97));
            using var scaled = original.Resize(w, h);
            images.Add(($"{name} at {w}×{h}", RgbImage.FromBitmap(scaled)));
        }

        return images;
    }

    private static RgbImage Transform(RgbImage image, Func<int, int, (int X, int Y)> source)
    {
        var pixels = new byte[image.Pixels.Length];
        for (var y = 0; y < image.Height; y++)
        {
            for (var x = 0; x < image.Width; x++)
            {
                var (sx, sy) = source(x, y);
                image.Pixels.AsSpan(3 * ((sy * image.Width) + sx), 3).CopyTo(pixels.AsSpan(3 * ((y * image.Width) + x), 3));
            }
        }

        return image with { Pixels = pixels };
    }

    [Fact]
    public async Task Real_images_detected_in_batches_across_jobs_get_exactly_the_boxes_they_get_one_at_a_time()
    {
        var images = await ImagesAsync();

        // One at a time: the fixture's model, one image after another (a batch of one, as before batching).
        var alone = new List<IReadOnlyList<TextBox>>();
        foreach (var (_, image) in images)
        {
            alone.Add(await fixture.Model.DetectAsync(image, CancellationToken.None));
        }

        // Batched: the worker's default detection settings, on a model whose detector waits up to
        // 3 s for a batch to fill, so that all twelve images meet; they are read at once.
        var models = Environment.GetEnvironmentVariable("Serving__Models__Path") is { Length: > 0 } path ? path : Path.Combine(OcrModelFixture.RepositoryRoot(), "models");
        var entry = ModelRepository.Load(models, requireWeights: false).Resolve("ppocr@4")!;
        entry.Config.MaxQueueDelayMs = 3000;
        var runs = new List<(int Count, int Width, int Height)>();
        var batched = new OcrModel(entry, new OnnxSessionFactory(new WorkerOptions(), NullLogger<OnnxSessionFactory>.Instance), new WorkerOptions());
        await using (batched)
        {
            batched.Detector.BatchExecuted += (n, w, h, _) => { lock (runs) { runs.Add((n, w, h)); } };
            var together = await Task.WhenAll(images.Select(i => Task.Run(() => batched.DetectAsync(i.Image, CancellationToken.None))));

            output.WriteLine($"{batched.Detector.Items} detections in {batched.Detector.Batches} runs: " + string.Join(", ", runs.Select(r => $"{r.Count}×{r.Width}×{r.Height}")));
            for (var i = 0; i < images.Count; i++)
            {
                output.WriteLine($"{images[i].Name}: {together[i].Count} boxes");
                Assert.Equal(alone[i].Count, together[i].Count);
                for (var b = 0; b < alone[i].Count; b++)
                {
                    // The same boxes and scores to the last bit, so the same crops and the same lines.
                    Assert.Equal(alone[i][b].Points, together[i][b].Points);
                    Assert.Equal(alone[i][b].Score, together[i][b].Score);
                }
            }

            Assert.Contains(runs, r => r.Count >= 4);
            Assert.True(batched.Detector.Items > batched.Detector.Batches, $"{batched.Detector.Items} detections in {batched.Detector.Batches} runs");
            Assert.Equal(0, batched.Detector.PaddedImages);
        }
    }

    [Fact]
    public async Task Real_images_read_in_batches_across_jobs_give_the_lines_they_give_one_at_a_time()
    {
        // The three images and each turned 180°: three detection sizes, two images of each.
        var images = (await ImagesAsync()).Where((_, i) => i % 4 is 0 or 2).ToList();
        var alone = new List<string[]>();
        foreach (var (_, image) in images)
        {
            alone.Add([.. (await fixture.Model.ReadAsync(image, CancellationToken.None)).Lines.Select(l => $"{l.Text} {l.Confidence} {string.Join(' ', l.Box)}")]);
        }

        var (batches, items) = (fixture.Model.Detector.Batches, fixture.Model.Detector.Items);
        var together = await Task.WhenAll(images.Select(i => Task.Run(() => fixture.Model.ReadAsync(i.Image, CancellationToken.None))));

        output.WriteLine($"{fixture.Model.Detector.Items - items} detections in {fixture.Model.Detector.Batches - batches} runs");
        for (var i = 0; i < images.Count; i++)
        {
            Assert.Equal(alone[i], together[i].Lines.Select(l => $"{l.Text} {l.Confidence} {string.Join(' ', l.Box)}"));
        }
    }
}
