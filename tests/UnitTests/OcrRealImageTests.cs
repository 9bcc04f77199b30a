using Async.Serving.OcrEval;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Ocr;
using Xunit.Abstractions;

namespace Async.Serving.UnitTests;

/// <summary>
/// The engine on real images nobody here rendered: scikit-image's sample photo of a printed page
/// (384×191, seven lines with tight leading, slightly curved), the same upscaled 3×, and a dense
/// paragraph. scripts/lib.sh (prepare, as scripts/test.sh runs it) fetches them from Debian's
/// python3-skimage; ground truth is tools/OcrEval/truth. These are the cases that failed: adjacent
/// lines merged into one garbage line or lost, a small image read at its own size, spaces lost.
/// </summary>
[Collection(OcrModelCollection.Name)]
public sealed class OcrRealImageTests(OcrModelFixture fixture, ITestOutputHelper output)
{
    internal static string ImagePath(string name)
    {
        var folder = Environment.GetEnvironmentVariable("SERVING_OCR_EVAL_IMAGES") is { Length: > 0 } dir
            ? dir
            : Path.Combine(OcrModelFixture.RepositoryRoot(), ".serving", "cache", "ocr-eval", "images");
        var path = Path.Combine(folder, name + ".png");
        Assert.True(File.Exists(path), $"{path} is missing: scripts/test.sh fetches it (fetch_ocr_eval_images in scripts/lib.sh).");
        return path;
    }

    private static string[] Truth(string name) =>
        File.ReadAllLines(Path.Combine(OcrModelFixture.RepositoryRoot(), "tools", "OcrEval", "truth", name + ".txt")).Where(l => l.Length > 0).ToArray();

    private async Task<string[]> ReadAsync(string name)
    {
        var image = RgbImage.Decode(await File.ReadAllBytesAsync(ImagePath(name)), long.MaxValue);
        var result = await fixture.Model.ReadAsync(image, CancellationToken.None);
        var lines = result.Lines.Select(l => l.Text).ToArray();
        output.WriteLine(string.Join('\n', lines));
        return lines;
    }

    [Theory]
    [InlineData("skimage-page")]
    [InlineData("skimage-page-x3")]
    [InlineData("skimage-bw-text")]
    public async Task Every_line_of_a_dense_page_comes_back_as_its_own_line_in_order(string name)
    {
        var truth = Truth(name);
        var lines = await ReadAsync(name);

        Assert.Equal(truth.Length, lines.Length);
        for (var i = 0; i < truth.Length; i++)
        {
            // Each line on its own and in its place: a merged or missing line fails here.
            Assert.True(OcrScore.CharacterErrorRate(truth[i], lines[i]) < 0.15, $"line {i}: '{lines[i]}' for '{truth[i]}'");
        }

        var recall = OcrScore.WordRecall(string.Join('\n', truth), string.Join('\n', lines));
        Assert.True(recall >= 0.9, $"word recall {recall:F3}");
    }

    [Fact]
    public async Task A_small_photo_keeps_the_spaces_between_words()
    {
        var text = string.Join('\n', await ReadAsync("skimage-page"));

        // Read as "determinemarkers", "histogramof greyvalues" before the detector scaled small images up and the decoder read spaces.
        Assert.Contains("determine markers", text, StringComparison.Ordinal);
        Assert.Contains("histogram of grey values", text, StringComparison.Ordinal);
        Assert.Contains("either object or background", text, StringComparison.Ordinal);
    }
}
