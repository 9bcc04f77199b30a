using Async.Serving.Fixtures;
using SkiaSharp;

namespace Async.Serving.Benchmark;

/// <summary>
/// Photo-like JPEG scenes (gradient sky, ground, seeded shapes, sensor-like speckle), drawn by the
/// scene generator the integration tests use (tests/Shared), and tiny PNGs for the trivial model.
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
}
