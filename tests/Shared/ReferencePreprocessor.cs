using Async.Serving.Models;
using SkiaSharp;

namespace Async.Serving.Fixtures;

/// <summary>
/// The worker's image preprocessing as it was before the fast path (commit ada5e92,
/// <c>ImagePreprocessor.Preprocess</c>), kept whole so that the benchmark measures both on the same
/// machine in the same run and the tests check that the fast path's embeddings stay with it:
/// decode (at a JPEG DCT scale that covers the input, or at full size with
/// <paramref name="scaledDecode"/> false), orient with a canvas, draw the crop with linear filtering
/// over mipmaps, write the planes one pixel at a time. No input checks: test inputs only.
/// </summary>
internal static class ReferencePreprocessor
{
    private static readonly SKSamplingOptions Sampling = new(SKFilterMode.Linear, SKMipmapMode.Linear);

    public static void Preprocess(ReadOnlySpan<byte> encoded, PreprocessingConfig config, Span<float> destination, bool scaledDecode = true)
    {
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data) ?? throw new ArgumentException("Not an image.", nameof(encoded));
        var oriented = codec.EncodedOrigin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom
            ? new SKSizeI(codec.Info.Height, codec.Info.Width)
            : codec.Info.Size;
        using var decoded = Decode(codec, oriented, config.Width, config.Height, scaledDecode);
        using var rotated = codec.EncodedOrigin == SKEncodedOrigin.TopLeft ? null : Orient(decoded, codec.EncodedOrigin);
        var source = rotated ?? decoded;
        using var resized = new SKBitmap(new SKImageInfo(config.Width, config.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(resized))
        using (var image = SKImage.FromBitmap(source))
        {
            canvas.Clear(SKColors.Black);
            var area = config.Resize == "stretch"
                ? SKRect.Create(source.Width, source.Height)
                : CenterCrop(source.Width, source.Height, config.Width, config.Height);
            canvas.DrawImage(image, area, SKRect.Create(config.Width, config.Height), Sampling);
        }

        WritePlanes(resized.GetPixelSpan(), config, destination[..(3 * config.Width * config.Height)]);
    }

    private static void WritePlanes(ReadOnlySpan<byte> rgba, PreprocessingConfig config, Span<float> destination)
    {
        var plane = destination.Length / 3;
        var bgr = config.ChannelOrder == "bgr";
        Span<float> mul = stackalloc float[3];
        Span<float> add = stackalloc float[3];
        for (var c = 0; c < 3; c++)
        {
            mul[c] = config.Scale / config.Std[c];
            add[c] = -config.Mean[c] / config.Std[c];
        }

        for (var i = 0; i < plane; i++)
        {
            var r = rgba[4 * i];
            var g = rgba[(4 * i) + 1];
            var b = rgba[(4 * i) + 2];
            destination[i] = ((bgr ? b : r) * mul[0]) + add[0];
            destination[plane + i] = (g * mul[1]) + add[1];
            destination[(2 * plane) + i] = ((bgr ? r : b) * mul[2]) + add[2];
        }
    }

    private static SKBitmap Decode(SKCodec codec, SKSizeI oriented, int width, int height, bool scaledDecode)
    {
        var scale = Math.Max((float)width / oriented.Width, (float)height / oriented.Height);
        var size = codec.Info.Size;
        if (scaledDecode && scale < 1f)
        {
            var scaled = codec.GetScaledDimensions(scale);
            var needed = (int)Math.Ceiling(Math.Min(codec.Info.Width, codec.Info.Height) * scale);
            if (Math.Min(scaled.Width, scaled.Height) >= needed && scaled.Width > 0 && scaled.Height > 0)
            {
                size = scaled;
            }
        }

        var info = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result != SKCodecResult.Success)
        {
            bitmap.Dispose();
            throw new InvalidOperationException($"The image could not be decoded ({result}).");
        }

        return bitmap;
    }

    private static SKBitmap Orient(SKBitmap bitmap, SKEncodedOrigin origin)
    {
        float w = bitmap.Width, h = bitmap.Height;
        var (matrix, swap) = origin switch
        {
            SKEncodedOrigin.TopRight => (new SKMatrix(-1, 0, w, 0, 1, 0, 0, 0, 1), false),
            SKEncodedOrigin.BottomRight => (new SKMatrix(-1, 0, w, 0, -1, h, 0, 0, 1), false),
            SKEncodedOrigin.BottomLeft => (new SKMatrix(1, 0, 0, 0, -1, h, 0, 0, 1), false),
            SKEncodedOrigin.LeftTop => (new SKMatrix(0, 1, 0, 1, 0, 0, 0, 0, 1), true),
            SKEncodedOrigin.RightTop => (new SKMatrix(0, -1, h, 1, 0, 0, 0, 0, 1), true),
            SKEncodedOrigin.RightBottom => (new SKMatrix(0, -1, h, -1, 0, w, 0, 0, 1), true),
            SKEncodedOrigin.LeftBottom => (new SKMatrix(0, 1, 0, -1, 0, w, 0, 0, 1), true),
            _ => (SKMatrix.Identity, false),
        };
        var result = new SKBitmap(new SKImageInfo(swap ? bitmap.Height : bitmap.Width, swap ? bitmap.Width : bitmap.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(result);
        canvas.SetMatrix(matrix);
        using var image = SKImage.FromBitmap(bitmap);
        canvas.DrawImage(image, 0, 0, Sampling);
        return result;
    }

    private static SKRect CenterCrop(int sourceWidth, int sourceHeight, int width, int height)
    {
        var scale = Math.Max((float)width / sourceWidth, (float)height / sourceHeight);
        var cropWidth = width / scale;
        var cropHeight = height / scale;
        return SKRect.Create((sourceWidth - cropWidth) / 2, (sourceHeight - cropHeight) / 2, cropWidth, cropHeight);
    }
}
