using SkiaSharp;

namespace Async.Serving.Fixtures;

/// <summary>
/// Photo-like scenes drawn with SkiaSharp, shared by the integration tests and the benchmark
/// (compiled into both from tests/Shared): a gradient sky, ground, and a seeded arrangement of
/// objects. The same seed drawn again with a different size, crop, exposure and JPEG quality is a
/// near-duplicate; another seed is an unrelated picture.
/// </summary>
internal static class SceneImages
{
    public static byte[] Scene(int seed, int width = 640, int height = 480, float crop = 0f, float brightness = 1f, int quality = 90)
    {
        using var bitmap = new SKBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            // Draw in a 1000×750 scene space; the crop zooms in on its centre.
            var zoom = 1f / (1f - (2 * crop));
            canvas.Translate(width / 2f, height / 2f);
            canvas.Scale(width / 1000f * zoom, height / 750f * zoom);
            canvas.Translate(-500, -375);
            Draw(canvas, seed);
        }

        if (Math.Abs(brightness - 1f) > 0.001f)
        {
            using var adjusted = new SKBitmap(width, height);
            using var canvas = new SKCanvas(adjusted);
            var b = brightness;
            using var paint = new SKPaint
            {
                ColorFilter = SKColorFilter.CreateColorMatrix(
                [
                    b, 0, 0, 0, 0,
                    0, b, 0, 0, 0,
                    0, 0, b, 0, 0,
                    0, 0, 0, 1, 0,
                ]),
            };
            using var image = SKImage.FromBitmap(bitmap);
            canvas.DrawImage(image, 0, 0, new SKSamplingOptions(SKFilterMode.Nearest), paint);
            return Jpeg(adjusted, quality);
        }

        return Jpeg(bitmap, quality);
    }

    public static byte[] Jpeg(SKBitmap bitmap, int quality = 90)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Jpeg, quality);
        return data.ToArray();
    }

    private static void Draw(SKCanvas canvas, int seed)
    {
        var random = new Random(seed);
        SKColor RandomColor(int min = 0, int max = 256) =>
            new((byte)random.Next(min, max), (byte)random.Next(min, max), (byte)random.Next(min, max));

        using var sky = SKShader.CreateLinearGradient(new SKPoint(0, 0), new SKPoint(0, 450),
            [RandomColor(120), RandomColor(60, 200)], SKShaderTileMode.Clamp);
        using var paint = new SKPaint { Shader = sky, IsAntialias = true };
        canvas.DrawRect(0, 0, 1000, 750, paint);
        paint.Shader = null;

        paint.Color = RandomColor(0, 140);
        canvas.DrawRect(0, 450 + random.Next(-80, 80), 1000, 400, paint);

        for (var i = 0; i < 14; i++)
        {
            paint.Color = RandomColor();
            var x = random.Next(0, 1000);
            var y = random.Next(100, 700);
            var s = random.Next(30, 160);
            switch (random.Next(4))
            {
                case 0:
                    canvas.DrawCircle(x, y, s / 2f, paint);
                    break;
                case 1:
                    canvas.DrawRect(x, y, s, s * 0.7f, paint);
                    break;
                case 2:
                    canvas.Save();
                    canvas.RotateDegrees(random.Next(0, 90), x, y);
                    canvas.DrawOval(x, y, s, s / 3f, paint);
                    canvas.Restore();
                    break;
                default:
                    paint.StrokeWidth = random.Next(4, 20);
                    paint.Style = SKPaintStyle.Stroke;
                    canvas.DrawLine(x, y, x + random.Next(-300, 300), y + random.Next(-300, 300), paint);
                    paint.Style = SKPaintStyle.Fill;
                    break;
            }
        }

        // Fine texture, as a camera sensor would add.
        for (var i = 0; i < 3000; i++)
        {
            paint.Color = RandomColor().WithAlpha(40);
            canvas.DrawPoint(random.Next(1000), random.Next(750), paint);
        }
    }
}
