using System.Collections.Concurrent;
using SkiaSharp;

namespace Async.Serving.Fixtures;

/// <summary>
/// Images of printed text drawn with SkiaSharp and the DejaVu fonts, shared by the unit tests, the
/// integration tests and the benchmark (compiled into each from tests/Shared): one line, optionally
/// rotated, or several lines at known positions whose ink bounds are returned. Dark text on a light
/// background, PNG or JPEG.
/// </summary>
internal static class TextImages
{
    public const string FontDirectory = "/usr/share/fonts/truetype/dejavu/";

    public const string Sans = "DejaVuSans.ttf";
    public const string Serif = "DejaVuSerif.ttf";
    public const string Mono = "DejaVuSansMono.ttf";
    public const string SansBold = "DejaVuSans-Bold.ttf";

    private static readonly ConcurrentDictionary<string, SKTypeface> Typefaces = new(StringComparer.Ordinal);

    /// <summary>A font file of <see cref="FontDirectory"/> (or a full path), loaded once.</summary>
    public static SKTypeface Typeface(string font) =>
        Typefaces.GetOrAdd(font, f =>
        {
            var path = Path.IsPathRooted(f) ? f : Path.Combine(FontDirectory, f);
            return SKTypeface.FromFile(path) ?? throw new FileNotFoundException($"Font '{path}' could not be loaded.", path);
        });

    /// <summary>
    /// One line of <paramref name="text"/> with <paramref name="padding"/> pixels of background
    /// around it, turned <paramref name="rotation"/> degrees clockwise about its centre (the image
    /// grows to hold the turned line).
    /// </summary>
    public static byte[] Line(
        string text, float size = 32, string font = Sans, float rotation = 0, int padding = 24,
        SKEncodedImageFormat format = SKEncodedImageFormat.Png, int quality = 92)
    {
        using var skFont = new SKFont(Typeface(font), size);
        var advance = skFont.MeasureText(text);
        var metrics = skFont.Metrics;
        var lineWidth = advance + (2 * padding);
        var lineHeight = metrics.Descent - metrics.Ascent + (2 * padding);
        var radians = rotation * MathF.PI / 180;
        var (cos, sin) = (MathF.Abs(MathF.Cos(radians)), MathF.Abs(MathF.Sin(radians)));
        var width = (int)MathF.Ceiling((lineWidth * cos) + (lineHeight * sin));
        var height = (int)MathF.Ceiling((lineWidth * sin) + (lineHeight * cos));

        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using (var canvas = new SKCanvas(bitmap))
        using (var paint = new SKPaint { Color = new SKColor(25, 25, 30), IsAntialias = true })
        {
            canvas.Clear(new SKColor(248, 246, 240));
            canvas.Translate(width / 2f, height / 2f);
            canvas.RotateDegrees(rotation);
            // Centred: the baseline sits so that ascent and descent are balanced about the centre.
            var baseline = -(metrics.Ascent + metrics.Descent) / 2;
            canvas.DrawText(text, -advance / 2, baseline, SKTextAlign.Left, skFont, paint);
        }

        return Encode(bitmap, format, quality);
    }

    /// <summary>A line of text placed at (<see cref="X"/>, <see cref="Y"/>): the left end and the top of its ascent.</summary>
    public sealed record TextLine(string Text, float X, float Y, float Size = 32, string Font = Sans);

    /// <summary>
    /// A page of <paramref name="width"/>×<paramref name="height"/> with <paramref name="lines"/>
    /// drawn where they say, and the ink bounds of each (in image pixels).
    /// </summary>
    public static (byte[] Image, SKRect[] Bounds) Page(
        int width, int height, IReadOnlyList<TextLine> lines,
        SKEncodedImageFormat format = SKEncodedImageFormat.Png, int quality = 92)
    {
        var bounds = new SKRect[lines.Count];
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using (var canvas = new SKCanvas(bitmap))
        using (var paint = new SKPaint { Color = new SKColor(20, 20, 20), IsAntialias = true })
        {
            canvas.Clear(new SKColor(250, 250, 250));
            for (var i = 0; i < lines.Count; i++)
            {
                var line = lines[i];
                using var font = new SKFont(Typeface(line.Font), line.Size);
                var baseline = line.Y - font.Metrics.Ascent;
                font.MeasureText(line.Text, out var ink);
                canvas.DrawText(line.Text, line.X, baseline, SKTextAlign.Left, font, paint);
                bounds[i] = new SKRect(line.X + ink.Left, baseline + ink.Top, line.X + ink.Right, baseline + ink.Bottom);
            }
        }

        return (Encode(bitmap, format, quality), bounds);
    }

    /// <summary>Paragraphs for pages: ordinary English sentences with numbers, one per line.</summary>
    public static readonly string[] PageText =
    [
        "Quarterly report for the harbour office",
        "Ships arrived in March: 412, up from 377",
        "The north pier reopens on Monday 14 April",
        "Fuel prices fell by 6 percent this quarter",
        "Please send questions to the front desk",
        "Cargo handled last week was 18,500 tonnes",
        "New cranes will be delivered in September",
        "Staff meeting moved to Thursday at 10:30",
        "Parking behind the warehouse is now closed",
        "Thank you for reading and keep it safe",
    ];

    /// <summary>
    /// A page of <see cref="PageText"/> as a phone would photograph it: the page is drawn, then laid
    /// on a darker desk with perspective (the top edge farther away), uneven light, a slight blur,
    /// sensor noise, and saved as a JPEG at quality 85 of 2000×1500 times <paramref name="scale"/>.
    /// <paramref name="copies"/> repeats the text (a denser page, in smaller type). Returns the JPEG
    /// and the lines in reading order.
    /// </summary>
    public static (byte[] Jpeg, string[] Lines) PhotographedPage(int seed = 1, int scale = 1, int copies = 1)
    {
        var random = new Random(seed);
        var lines = Enumerable.Repeat(PageText, copies).SelectMany(l => l).ToArray();
        var fonts = new[] { Serif, Sans, Serif, Sans, Mono, Serif, Sans, Serif, SansBold, Sans };
        const int pageWidth = 1240, pageHeight = 1100;
        var size = 36f / copies;
        var pitch = (pageHeight - 120f) / lines.Length;
        using var page = new SKBitmap(pageWidth, pageHeight, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using (var canvas = new SKCanvas(page))
        using (var paint = new SKPaint { Color = new SKColor(30, 30, 35), IsAntialias = true })
        {
            canvas.Clear(new SKColor(245, 243, 236));
            for (var i = 0; i < lines.Length; i++)
            {
                using var font = new SKFont(Typeface(fonts[i % fonts.Length]), i == 0 ? size * 1.25f : size);
                canvas.DrawText(lines[i], 80, 100 + (size * 0.6f) + (i * pitch), SKTextAlign.Left, font, paint);
            }
        }

        int width = 2000 * scale, height = 1500 * scale;
        using var photo = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using (var canvas = new SKCanvas(photo))
        {
            canvas.Clear(new SKColor(92, 74, 60)); // the desk
            // Perspective: map the page's corners to a trapezoid, narrower at the top, slightly turned.
            var source = new[] { new SKPoint(0, 0), new SKPoint(pageWidth, 0), new SKPoint(pageWidth, pageHeight), new SKPoint(0, pageHeight) };
            var skew = (float)(random.NextDouble() * 30);
            var target = new[] { new SKPoint(360 + skew, 150), new SKPoint(1650 + skew, 170), new SKPoint(1780, 1390), new SKPoint(230, 1360) };
            canvas.SetMatrix(SKMatrix.Concat(SKMatrix.CreateScale(scale, scale), Perspective(source, target)));
            using var image = SKImage.FromBitmap(page);
            // The blur is in page units; divided by the scale it stays about 1.4 photo pixels.
            using var blur = new SKPaint { ImageFilter = SKImageFilter.CreateBlur(0.7f / scale, 0.7f / scale) };
            canvas.DrawImage(image, 0, 0, new SKSamplingOptions(SKCubicResampler.Mitchell), blur);
            canvas.ResetMatrix();
            // Uneven light: darker towards the lower right.
            using var shade = new SKPaint
            {
                Shader = SKShader.CreateLinearGradient(new SKPoint(0, 0), new SKPoint(width, height),
                    [new SKColor(255, 255, 255, 0), new SKColor(0, 0, 0, 70)], SKShaderTileMode.Clamp),
            };
            canvas.DrawRect(0, 0, width, height, shade);
        }

        var pixels = photo.GetPixelSpan();
        for (var i = 0; i < pixels.Length; i += 4)
        {
            var noise = random.Next(-9, 10);
            for (var c = 0; c < 3; c++)
            {
                pixels[i + c] = (byte)Math.Clamp(pixels[i + c] + noise, 0, 255);
            }
        }

        return (Encode(photo, SKEncodedImageFormat.Jpeg, 85), lines);
    }

    /// <summary>The projective transform taking the four <paramref name="from"/> corners to <paramref name="to"/>.</summary>
    private static SKMatrix Perspective(SKPoint[] from, SKPoint[] to)
    {
        static SKMatrix SquareTo(SKPoint[] q)
        {
            // Heckbert's unit-square-to-quad mapping.
            float x0 = q[0].X, y0 = q[0].Y, x1 = q[1].X, y1 = q[1].Y, x2 = q[2].X, y2 = q[2].Y, x3 = q[3].X, y3 = q[3].Y;
            var sx = x0 - x1 + x2 - x3;
            var sy = y0 - y1 + y2 - y3;
            float dx1 = x1 - x2, dx2 = x3 - x2, dy1 = y1 - y2, dy2 = y3 - y2;
            var den = (dx1 * dy2) - (dx2 * dy1);
            var g = ((sx * dy2) - (dx2 * sy)) / den;
            var h = ((dx1 * sy) - (sx * dy1)) / den;
            return new SKMatrix(x1 - x0 + (g * x1), x3 - x0 + (h * x3), x0, y1 - y0 + (g * y1), y3 - y0 + (h * y3), y0, g, h, 1);
        }

        var toSquare = SquareTo(from).TryInvert(out var inverse) ? inverse : throw new InvalidOperationException("Degenerate quad.");
        return SKMatrix.Concat(SquareTo(to), toSquare);
    }

    private static byte[] Encode(SKBitmap bitmap, SKEncodedImageFormat format, int quality)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, quality);
        return data.ToArray();
    }
}
