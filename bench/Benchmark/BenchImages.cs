using SkiaSharp;

namespace Async.Serving.Benchmark;

/// <summary>
/// Photo-like JPEG scenes (gradient sky, ground, seeded shapes, sensor-like speckle), the same
/// drawing idea as the integration tests' fixtures, and tiny PNGs for the trivial model.
/// </summary>
internal static class BenchImages
{
    /// <summary><paramref name="count"/> JPEGs: three in four at 640×480, one in four at 1280×960.</summary>
    public static IReadOnlyList<byte[]> Photos(int count)
    {
        var photos = new byte[count][];
        Parallel.For(0, count, i =>
        {
            var large = i % 4 == 3;
            photos[i] = Scene(1000 + i, large ? 1280 : 640, large ? 960 : 480);
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

    private static byte[] Scene(int seed, int width, int height)
    {
        using var bitmap = new SKBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Scale(width / 1000f, height / 750f);
            Draw(canvas, seed);
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Jpeg, 90);
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

        // Fine texture, as a camera sensor would add: it keeps the JPEGs photo-sized.
        for (var i = 0; i < 3000; i++)
        {
            paint.Color = RandomColor().WithAlpha(40);
            canvas.DrawPoint(random.Next(1000), random.Next(750), paint);
        }
    }
}
