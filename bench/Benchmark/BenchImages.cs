using Async.Serving.Fixtures;
using SkiaSharp;

namespace Async.Serving.Benchmark;

/// <summary>
/// Photo-like JPEG scenes (gradient sky, ground, seeded shapes, sensor-like speckle), drawn by the
/// scene generator the integration tests use (tests/Shared), tiny PNGs for the trivial model, and
/// printed pages for OCR (the tests' text renderer).
/// </summary>
internal static class BenchImages
{
    private static readonly string[] Words =
    [
        "harbour", "office", "report", "cargo", "tonnes", "pier", "crane", "delivery", "invoice", "total",
        "payment", "due", "order", "shipment", "north", "south", "warehouse", "meeting", "budget", "account",
        "station", "platform", "ticket", "price", "update", "notice", "schedule", "weekly", "Monday", "Friday",
        "March", "October", "room", "floor", "contract", "supplier", "balance", "received", "closed", "open",
    ];

    private static readonly string[] Fonts = [TextImages.Sans, TextImages.Serif, TextImages.Mono, TextImages.SansBold];

    /// <summary><paramref name="count"/> JPEGs: three in four at 640×480, one in four at 1280×960.</summary>
    public static IReadOnlyList<byte[]> Photos(int count)
    {
        var photos = new byte[count][];
        Parallel.For(0, count, i =>
        {
            var large = i % 4 == 3;
            photos[i] = SceneImages.Scene(1000 + i, large ? 1280 : 640, large ? 960 : 480);
        });
        return photos;
    }

    /// <summary>8×8 PNGs of flat, distinct colours.</summary>
    public static IReadOnlyList<byte[]> TinyPngs(int count)
    {
        var pngs = new List<byte[]>(count);
        for (var i = 0; i < count; i++)
        {
            using var bitmap = new SKBitmap(8, 8);
            using (var canvas = new SKCanvas(bitmap))
            {
                canvas.Clear(new SKColor((byte)(i * 37), (byte)(i * 91), (byte)(i * 53)));
            }

            using var image = SKImage.FromBitmap(bitmap);
            using var data = image.Encode(SKEncodedImageFormat.Png, 100);
            pngs.Add(data.ToArray());
        }

        return pngs;
    }

    /// <summary>
    /// <paramref name="count"/> printed pages, 1000×700 PNG, each of 6 to 10 lines of seeded words and
    /// numbers (at most 38 characters a line) in the four DejaVu faces at 22 to 36 px; with the lines drawn.
    /// </summary>
    public static IReadOnlyList<(byte[] Png, string[] Lines)> TextPages(int count)
    {
        var pages = new (byte[] Png, string[] Lines)[count];
        Parallel.For(0, count, i =>
        {
            var random = new Random(500 + i);
            var lineCount = 6 + (i % 5);
            var baseSize = 22f + random.Next(0, 11);
            var step = Math.Min((baseSize + 4) * 2f, 620f / lineCount);
            var lines = new List<TextImages.TextLine>(lineCount);
            for (var k = 0; k < lineCount; k++)
            {
                lines.Add(new TextImages.TextLine(Sentence(random), 40 + random.Next(0, 80), 40 + (k * step),
                    baseSize + random.Next(0, 5), Fonts[(i + k) % Fonts.Length]));
            }

            pages[i] = (TextImages.Page(1000, 700, lines).Image, [.. lines.Select(l => l.Text)]);
        });
        return pages;
    }

    private static string Sentence(Random random)
    {
        var words = new List<string>();
        var length = 0;
        while (true)
        {
            var word = random.Next(0, 4) == 0
                ? random.Next(2, 9999).ToString(System.Globalization.CultureInfo.InvariantCulture)
                : Words[random.Next(Words.Length)];
            if (length + word.Length + 1 > 38 || words.Count >= 7)
            {
                break;
            }

            words.Add(word);
            length += word.Length + 1;
        }

        var text = string.Join(' ', words);
        return char.ToUpperInvariant(text[0]) + text[1..];
    }
}
