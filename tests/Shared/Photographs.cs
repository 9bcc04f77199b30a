using SkiaSharp;

namespace Async.Serving.Fixtures;

/// <summary>
/// Real photographs: scikit-image's sample pictures (Debian python3-skimage), which
/// <c>fetch_test_photos</c> in scripts/lib.sh extracts into the folder named by
/// <c>SERVING_TEST_PHOTOS</c>. Never committed. <see cref="Jpeg"/> re-encodes one at a chosen size.
/// </summary>
internal static class Photographs
{
    /// <summary>An astronaut portrait (512×512), a cat (451×300), a coffee cup (600×400), a motorcycle (741×500), a rocket on its pad (640×427).</summary>
    public static readonly string[] Names = ["astronaut", "chelsea", "coffee", "motorcycle_left", "rocket"];

    public static string Folder() =>
        Environment.GetEnvironmentVariable("SERVING_TEST_PHOTOS") is { Length: > 0 } folder
            ? folder
            : throw new InvalidOperationException("SERVING_TEST_PHOTOS is not set: scripts/test.sh and scripts/bench.sh set it (fetch_test_photos in scripts/lib.sh).");

    public static string Path(string name)
    {
        var path = System.IO.Path.Combine(Folder(), name + (name == "rocket" ? ".jpg" : ".png"));
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path} is missing: fetch_test_photos in scripts/lib.sh extracts it.", path);
    }

    /// <summary>
    /// Photograph <paramref name="name"/> centre-cropped to the aspect of <paramref name="width"/>×<paramref name="height"/>,
    /// scaled to that size with cubic resampling, as a baseline JPEG of <paramref name="quality"/>.
    /// With <paramref name="origin"/> other than top-left the pixels are stored turned so that a viewer
    /// applying that EXIF orientation shows the same picture, and the tag is written.
    /// </summary>
    public static byte[] Jpeg(string name, int width, int height, int quality = 90, SKEncodedOrigin origin = SKEncodedOrigin.TopLeft)
    {
        using var source = SKBitmap.Decode(Path(name)) ?? throw new InvalidDataException($"{Path(name)} does not decode.");
        var scale = Math.Max((float)width / source.Width, (float)height / source.Height);
        var crop = SKRect.Create((source.Width - (width / scale)) / 2, (source.Height - (height / scale)) / 2, width / scale, height / scale);
        using var upright = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using (var canvas = new SKCanvas(upright))
        using (var image = SKImage.FromBitmap(source))
        {
            canvas.DrawImage(image, crop, SKRect.Create(width, height), new SKSamplingOptions(SKCubicResampler.Mitchell));
        }

        if (origin == SKEncodedOrigin.TopLeft)
        {
            return Encode(upright, quality);
        }

        // Stored pixels = the upright picture under the inverse of the orientation's transform.
        var swap = origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        var (storedWidth, storedHeight) = swap ? (height, width) : (width, height);
        using var stored = new SKBitmap(new SKImageInfo(storedWidth, storedHeight, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using (var canvas = new SKCanvas(stored))
        using (var image = SKImage.FromBitmap(upright))
        {
            float w = storedWidth, h = storedHeight;
            // The display transform maps stored → upright; its inverse draws upright → stored.
            var display = origin switch
            {
                SKEncodedOrigin.TopRight => new SKMatrix(-1, 0, w, 0, 1, 0, 0, 0, 1),
                SKEncodedOrigin.BottomRight => new SKMatrix(-1, 0, w, 0, -1, h, 0, 0, 1),
                SKEncodedOrigin.BottomLeft => new SKMatrix(1, 0, 0, 0, -1, h, 0, 0, 1),
                SKEncodedOrigin.LeftTop => new SKMatrix(0, 1, 0, 1, 0, 0, 0, 0, 1),
                SKEncodedOrigin.RightTop => new SKMatrix(0, -1, h, 1, 0, 0, 0, 0, 1),
                SKEncodedOrigin.RightBottom => new SKMatrix(0, -1, h, -1, 0, w, 0, 0, 1),
                _ => new SKMatrix(0, 1, 0, -1, 0, w, 0, 0, 1),
            };
            canvas.SetMatrix(display.Invert());
            canvas.DrawImage(image, 0, 0, new SKSamplingOptions(SKFilterMode.Nearest));
        }

        return WithOrientation(Encode(stored, quality), origin);
    }

    private static byte[] Encode(SKBitmap bitmap, int quality)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Jpeg, quality);
        return data.ToArray();
    }

    /// <summary>Inserts an APP1 Exif segment holding only the orientation tag (0x0112) right after the JPEG's SOI marker.</summary>
    private static byte[] WithOrientation(byte[] jpeg, SKEncodedOrigin origin)
    {
        byte[] exif =
        [
            0xFF, 0xE1, 0x00, 0x22, (byte)'E', (byte)'x', (byte)'i', (byte)'f', 0, 0,
            (byte)'I', (byte)'I', 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00, // little-endian TIFF header, first IFD at 8
            0x01, 0x00, // one entry
            0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, (byte)origin, 0x00, 0x00, 0x00, // Orientation, SHORT, 1 value
            0x00, 0x00, 0x00, 0x00, // no next IFD
        ];
        return [.. jpeg.AsSpan(0, 2), .. exif, .. jpeg.AsSpan(2)];
    }
}
