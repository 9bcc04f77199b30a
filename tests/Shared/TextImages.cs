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

    private static byte[] Encode(SKBitmap bitmap, SKEncodedImageFormat format, int quality)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, quality);
        return data.ToArray();
    }
}
