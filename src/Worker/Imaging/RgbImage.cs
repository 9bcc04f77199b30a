using SkiaSharp;

namespace Async.Serving.Worker.Imaging;

/// <summary>
/// An image as packed RGB24, row-major, no padding between rows: what the OCR engine reads. Encoded
/// images are decoded into it (<see cref="Decode"/>); video frames from ffmpeg already are.
/// </summary>
internal sealed record RgbImage(int Width, int Height, byte[] Pixels)
{
    /// <summary>
    /// Decodes an encoded image with its EXIF orientation applied, at full resolution or scaled down
    /// so that its longer side is at most <paramref name="maxSide"/>. Transparent pixels are laid
    /// over white (dark text on a transparent background stays readable). Fails as
    /// ImagePreprocessor does: <c>input_invalid</c> for undecodable data, <c>input_too_large</c> when
    /// the header declares more than <paramref name="maxPixels"/> pixels. <paramref name="original"/>
    /// is the oriented size before any scaling.
    /// </summary>
    public static RgbImage Decode(ReadOnlySpan<byte> encoded, long maxPixels, out SKSizeI original, int maxSide = int.MaxValue)
    {
        using var data = SKData.CreateCopy(encoded);
        using var codec = ImagePreprocessor.OpenCodec(data, maxPixels);
        original = ImagePreprocessor.OrientedSize(codec);
        var scale = Math.Min(1.0, (double)maxSide / Math.Max(original.Width, original.Height));
        var (width, height) = (Math.Max(1, (int)Math.Round(original.Width * scale)), Math.Max(1, (int)Math.Round(original.Height * scale)));
        // A JPEG is decoded at 1/2, 1/4 or 1/8 when that still covers the target: cheaper than full size.
        using var decoded = ImagePreprocessor.Decode(codec, original, width, height);
        using var rotated = codec.EncodedOrigin == SKEncodedOrigin.TopLeft ? null : ImagePreprocessor.Orient(decoded, codec.EncodedOrigin);
        var oriented = rotated ?? decoded;
        if (oriented.Width == width && oriented.Height == height)
        {
            return FromBitmap(oriented);
        }

        using var resized = ResizeBitmap(oriented, width, height);
        return FromBitmap(resized);
    }

    /// <summary>Decodes at full resolution (see the other overload).</summary>
    public static RgbImage Decode(ReadOnlySpan<byte> encoded, long maxPixels) => Decode(encoded, maxPixels, out _);

    /// <summary>Copies a premultiplied RGBA8888 bitmap, laying it over white.</summary>
    public static RgbImage FromBitmap(SKBitmap bitmap)
    {
        if (bitmap.ColorType != SKColorType.Rgba8888)
        {
            using var converted = new SKBitmap(new SKImageInfo(bitmap.Width, bitmap.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
            using (var canvas = new SKCanvas(converted))
            using (var image = SKImage.FromBitmap(bitmap))
            {
                canvas.Clear(SKColors.Transparent);
                canvas.DrawImage(image, 0, 0, ImagePreprocessor.Sampling);
            }

            return FromBitmap(converted);
        }

        var width = bitmap.Width;
        var height = bitmap.Height;
        var pixels = new byte[3 * width * height];
        var rgba = bitmap.GetPixelSpan();
        var unpremultiplied = bitmap.AlphaType == SKAlphaType.Unpremul;
        for (int i = 0, o = 0; o < pixels.Length; i += 4, o += 3)
        {
            var a = rgba[i + 3];
            if (a == 255)
            {
                pixels[o] = rgba[i];
                pixels[o + 1] = rgba[i + 1];
                pixels[o + 2] = rgba[i + 2];
            }
            else if (unpremultiplied)
            {
                // Over white: c·a + 255·(1 − a).
                pixels[o] = (byte)(((rgba[i] * a) + (255 * (255 - a)) + 127) / 255);
                pixels[o + 1] = (byte)(((rgba[i + 1] * a) + (255 * (255 - a)) + 127) / 255);
                pixels[o + 2] = (byte)(((rgba[i + 2] * a) + (255 * (255 - a)) + 127) / 255);
            }
            else
            {
                // Premultiplied over white: c + (255 − a).
                pixels[o] = (byte)Math.Min(255, rgba[i] + 255 - a);
                pixels[o + 1] = (byte)Math.Min(255, rgba[i + 1] + 255 - a);
                pixels[o + 2] = (byte)Math.Min(255, rgba[i + 2] + 255 - a);
            }
        }

        return new RgbImage(width, height, pixels);
    }

    /// <summary>An opaque RGBA8888 copy, for drawing with SkiaSharp.</summary>
    public SKBitmap ToBitmap() => ImagePreprocessor.BitmapFromRgb(Pixels, Width, Height);

    /// <summary>
    /// This image scaled to <paramref name="width"/>×<paramref name="height"/> as RGBA8888, with
    /// linear filtering over mipmaps (so a large downscale averages instead of aliasing).
    /// </summary>
    public SKBitmap Resize(int width, int height)
    {
        using var source = ToBitmap();
        return ResizeBitmap(source, width, height);
    }

    /// <summary>Scales a bitmap with linear filtering over mipmaps into a new opaque RGBA8888 bitmap.</summary>
    internal static SKBitmap ResizeBitmap(SKBitmap source, int width, int height) => ResizeBitmap(source, width, height, ImagePreprocessor.Sampling);

    /// <summary>Scales a bitmap with <paramref name="sampling"/> into a new opaque RGBA8888 bitmap.</summary>
    internal static SKBitmap ResizeBitmap(SKBitmap source, int width, int height, SKSamplingOptions sampling)
    {
        var result = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using var canvas = new SKCanvas(result);
        using var image = SKImage.FromBitmap(source);
        canvas.Clear(SKColors.White);
        canvas.DrawImage(image, SKRect.Create(source.Width, source.Height), SKRect.Create(width, height), sampling);
        return result;
    }
}
