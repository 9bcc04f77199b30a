using System.Diagnostics;
using System.Text.Json;
using Async.Serving.Fixtures;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Inference;
using Async.Serving.Worker.Ocr;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using SkiaSharp;
using Xunit.Abstractions;

namespace Async.Serving.UnitTests;

/// <summary>The OCR engine end to end on the real PP-OCRv4 networks, on rendered text.</summary>
[Collection(OcrModelCollection.Name)]
public sealed class OcrModelTests(OcrModelFixture fixture, ITestOutputHelper output)
{
    private const long MaxPixels = 50_000_000;

    private async Task<OcrResult> ReadAsync(byte[] encoded)
    {
        var image = RgbImage.Decode(encoded, MaxPixels);
        var started = Stopwatch.GetTimestamp();
        var result = await fixture.Model.ReadAsync(image, CancellationToken.None);
        output.WriteLine($"{image.Width}×{image.Height}: {Stopwatch.GetElapsedTime(started).TotalMilliseconds:F0} ms");
        foreach (var line in result.Lines)
        {
            output.WriteLine($"  '{line.Text}' {line.Confidence:F3} [{string.Join(" ", line.Box.Select(p => $"({p.X},{p.Y})"))}]");
        }

        return result;
    }

    [Fact]
    public async Task A_rendered_line_is_read_back_exactly()
    {
        var result = await ReadAsync(TextImages.Line("Hello World 2026", size: 36));

        var line = Assert.Single(result.Lines);
        Assert.Equal("Hello World 2026", line.Text);
        Assert.True(line.Confidence > 0.9f, $"confidence {line.Confidence}");
    }

    [Fact]
    public async Task A_paragraph_is_read_line_by_line_in_reading_order()
    {
        string[] text =
        [
            "The quick brown fox jumps over",
            "the lazy dog near the river bank",
            "while seven small birds sing",
            "in the early morning light",
        ];
        // Set solid: 34 px type on a 46 px pitch, so the recogniser's margin above and below a line stays clear of its neighbours.
        var (page, _) = TextImages.Page(900, 260, [.. text.Select((t, i) => new TextImages.TextLine(t, 40, 30 + (i * 46), 34, TextImages.Serif))], SKEncodedImageFormat.Jpeg);

        var result = await ReadAsync(page);

        Assert.Equal(text, result.Lines.Select(l => l.Text));
    }

    [Fact]
    public async Task Two_columns_on_one_row_are_read_left_to_right()
    {
        var (page, _) = TextImages.Page(1000, 200,
        [
            new("Invoice number 4471", 30, 40, 30),
            new("Total 318.50", 640, 44, 30),
            new("Due in 30 days", 30, 120, 30),
        ]);

        var result = await ReadAsync(page);

        Assert.Equal(["Invoice number 4471", "Total 318.50", "Due in 30 days"], result.Lines.Select(l => l.Text));
    }

    [Fact]
    public async Task A_page_set_in_two_columns_is_read_column_by_column()
    {
        string[] left = [.. TextImages.PageText[1..6]];
        string[] right = [.. TextImages.PageText[5..10]];
        var lines = new List<TextImages.TextLine> { new("Harbour office quarterly report", 40, 24, 40, TextImages.SansBold) };
        lines.AddRange(left.Select((t, i) => new TextImages.TextLine(t, 40, 100 + (i * 44), 24, TextImages.Serif)));
        lines.AddRange(right.Select((t, i) => new TextImages.TextLine(t, 640, 104 + (i * 44), 24, TextImages.Serif)));
        // A footer set a blank line below the columns, under the left one: read last, not as the left column's end.
        lines.Add(new("Printed by the harbour office", 40, 370, 24));
        var (page, bounds) = TextImages.Page(1240, 430, lines, SKEncodedImageFormat.Jpeg);
        Assert.True(bounds[1..6].Max(b => b.Right) < 600, "the left column must leave a gutter");

        var result = await ReadAsync(page);

        Assert.Equal(lines.Select(l => l.Text), result.Lines.Select(l => l.Text));
    }

    [Fact]
    public async Task An_upside_down_line_is_turned_by_the_angle_classifier()
    {
        var result = await ReadAsync(TextImages.Line("Quarterly revenue grew 12 percent", size: 32, rotation: 180));

        Assert.Equal("Quarterly revenue grew 12 percent", Assert.Single(result.Lines).Text);
    }

    [Fact]
    public async Task A_tilted_line_is_read()
    {
        var result = await ReadAsync(TextImages.Line("Tilted text reads fine", size: 34, rotation: 10));

        Assert.Equal("Tilted text reads fine", Assert.Single(result.Lines).Text);
    }

    [Fact]
    public async Task Boxes_lie_where_the_lines_were_drawn_in_a_large_image()
    {
        // 2400×1600: detection runs at 1280×864, boxes come back in original pixels.
        TextImages.TextLine[] lines =
        [
            new("Warehouse inventory report", 200, 150, 56),
            new("Section 7 pallets 1250", 1300, 700, 48, TextImages.Mono),
            new("Checked by the night shift", 400, 1300, 64, TextImages.SansBold),
        ];
        var (page, bounds) = TextImages.Page(2400, 1600, lines, SKEncodedImageFormat.Jpeg);

        var result = await ReadAsync(page);

        Assert.Equal(lines.Select(l => l.Text), result.Lines.Select(l => l.Text));
        foreach (var (line, ink) in result.Lines.Zip(bounds))
        {
            var left = line.Box.Min(p => p.X);
            var right = line.Box.Max(p => p.X);
            var top = line.Box.Min(p => p.Y);
            var bottom = line.Box.Max(p => p.Y);
            output.WriteLine($"{line.Text}: box x {left}..{right} y {top}..{bottom}; ink x {ink.Left:F0}..{ink.Right:F0} y {ink.Top:F0}..{ink.Bottom:F0}");
            Assert.InRange(left, ink.Left - 8, ink.Left + 8);
            Assert.InRange(right, ink.Right - 8, ink.Right + 8);
            Assert.InRange(top, ink.Top - 8, ink.Top + 8);
            Assert.InRange(bottom, ink.Bottom - 8, ink.Bottom + 8);
        }
    }

    [Fact]
    public async Task A_blank_image_has_no_lines()
    {
        using var bitmap = new SKBitmap(320, 200);
        bitmap.Erase(SKColors.White);
        using var image = SKImage.FromBitmap(bitmap);
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);

        var result = await ReadAsync(png.ToArray());

        Assert.Equal((320, 200), (result.Width, result.Height));
        Assert.Empty(result.Lines);
    }

    [Fact]
    public async Task The_pipeline_writes_lines_as_json()
    {
        var pipeline = NewPipeline();

        var json = await pipeline.RunAsync(TextImages.Line("Order 1234 shipped", size: 30), fixture.Model, CancellationToken.None);

        output.WriteLine(json);
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        Assert.True(root.GetProperty("width").GetInt32() > 0);
        var line = Assert.Single(root.GetProperty("lines").EnumerateArray());
        Assert.Equal("Order 1234 shipped", line.GetProperty("text").GetString());
        var confidence = line.GetProperty("confidence").GetDouble();
        Assert.Equal(Math.Round(confidence, 4), confidence);
        Assert.Equal(4, line.GetProperty("box").GetArrayLength());
        Assert.All(line.GetProperty("box").EnumerateArray(), p => Assert.Equal(2, p.GetArrayLength()));
    }

    [Fact]
    public async Task The_pipeline_fails_undecodable_input_as_invalid()
    {
        var pipeline = NewPipeline();

        var error = await Assert.ThrowsAsync<JobFailureException>(() => pipeline.RunAsync([1, 2, 3, 4], fixture.Model, CancellationToken.None));

        Assert.Equal("input_invalid", error.Code);
    }

    [Fact]
    public async Task Concurrent_images_share_the_batchers()
    {
        var images = Enumerable.Range(0, 6).Select(i => RgbImage.Decode(TextImages.Line($"Parcel {1000 + (i * 7)} delivered", size: 28), MaxPixels)).ToArray();
        var itemsBefore = fixture.Model.Batchers.Sum(b => b.Items);
        var batchesBefore = fixture.Model.Batchers.Sum(b => b.Batches);

        var results = await Task.WhenAll(images.Select(i => Task.Run(() => fixture.Model.ReadAsync(i, CancellationToken.None))));

        for (var i = 0; i < images.Length; i++)
        {
            // Each result belongs to its own image (spaces aside: this test is about batching, not reading).
            Assert.Equal($"Parcel{1000 + (i * 7)}delivered", Assert.Single(results[i].Lines).Text.Replace(" ", string.Empty, StringComparison.Ordinal));
        }

        var items = fixture.Model.Batchers.Sum(b => b.Items) - itemsBefore;
        var batches = fixture.Model.Batchers.Sum(b => b.Batches) - batchesBefore;
        output.WriteLine($"{items} crops (classifier + recogniser) in {batches} batches");
        Assert.Equal(12, items);
    }

    [Fact]
    public async Task A_cancelled_read_stops()
    {
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        var image = RgbImage.Decode(TextImages.Line("Never read", size: 30), MaxPixels);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => fixture.Model.ReadAsync(image, cts.Token));
    }

    /// <summary>The pipeline as the worker builds it; these tests run it on the fixture's model, so its own loader stays unused.</summary>
    private static ImageOcrPipeline NewPipeline()
    {
        var options = new WorkerOptions();
        return new ImageOcrPipeline(Options.Create(options), new OnnxSessionFactory(options, NullLogger<OnnxSessionFactory>.Instance));
    }
}
