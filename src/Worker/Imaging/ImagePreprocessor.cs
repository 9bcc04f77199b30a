using System.Buffers;
using System.Runtime.InteropServices;
using Async.Serving.Jobs;
using Async.Serving.Models;
using Async.Serving.Worker.Inference;
using SkiaSharp;

namespace Async.Serving.Worker.Imaging;

/// <summary>
/// Decodes an encoded image with SkiaSharp and writes it as planar floats in the layout a model's
/// config asks for. The header is read first: an image that declares too many pixels is refused
/// before a single pixel is decoded. A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8)
/// that still covers the model's input, into a pooled buffer; <see cref="PlanarResampler"/> then
/// orients, crops, resizes and normalises it straight into the destination (the job's pooled input
/// buffer, or a slot of a batch tensor), with no bitmap in between.
/// </summary>
public static class ImagePreprocessor
{
    /// <summary>Linear filtering over mipmaps: a large downscale averages instead of aliasing.</summary>
    internal static readonly SKSamplingOptions Sampling = new(SKFilterMode.Linear, SKMipmapMode.Linear);

    /// <summary>16 MiB: a 2048×2048 decode, more than any DCT-scaled JPEG for a model input of up to 1024 pixels needs.</summary>
    private const int MaxPooledDecodeBytes = 16 << 20;

    /// <summary>Fills <paramref name="destination"/> (channels × height × width) from <paramref name="encoded"/>.</summary>
    public static void Preprocess(ReadOnlySpan<byte> encoded, PreprocessingConfig config, long maxPixels, Span<float> destination)
    {
        var width = config.Width;
        var height = config.Height;
        if (destination.Length < 3 * width * height)
        {
            throw new ArgumentException("Destination is smaller than the model input.", nameof(destination));
        }

        using var data = SKData.CreateCopy(encoded);
        using var codec = OpenCodec(data, maxPixels);
        var size = DecodeSize(codec, OrientedSize(codec), width, height);
        var info = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        // A pooled buffer for the usual sizes; a large PNG's full-size decode is not kept in the pool.
        var pooled = info.BytesSize <= MaxPooledDecodeBytes;
        var pixels = pooled ? ArrayPool<byte>.Shared.Rent(info.BytesSize) : GC.AllocateUninitializedArray<byte>(info.BytesSize);
        var pinned = GCHandle.Alloc(pixels, GCHandleType.Pinned);
        try
        {
            Check(codec.GetPixels(info, pinned.AddrOfPinnedObject()));
            PlanarResampler.Resample(pixels.AsSpan(0, info.BytesSize), size.Width, size.Height, 4, codec.EncodedOrigin, config, destination[..(3 * width * height)]);
        }
        finally
        {
            pinned.Free();
            if (pooled)
            {
                ArrayPool<byte>.Shared.Return(pixels);
            }
        }
    }

    /// <summary>
    /// Fills <paramref name="destination"/> from packed RGB24 pixels (a video frame): resized into the
    /// model's size as an encoded image is, then written as planes.
    /// </summary>
    public static void PreprocessRgb(ReadOnlySpan<byte> rgb, int width, int height, PreprocessingConfig config, Span<float> destination)
    {
        if (width == config.Width && height == config.Height)
        {
            WritePlanes(rgb, config, destination[..(3 * width * height)], bytesPerPixel: 3);
            return;
        }

        PlanarResampler.Resample(rgb, width, height, 3, SKEncodedOrigin.TopLeft, config, destination[..(3 * config.Width * config.Height)]);
    }

    /// <summary>An opaque RGBA8888 bitmap of packed RGB24 pixels, for drawing with SkiaSharp.</summary>
    internal static SKBitmap BitmapFromRgb(ReadOnlySpan<byte> rgb, int width, int height)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = bitmap.GetPixelSpan();
        for (int i = 0, j = 0; i < 3 * width * height; i += 3, j += 4)
        {
            rgba[j] = rgb[i];
            rgba[j + 1] = rgb[i + 1];
            rgba[j + 2] = rgb[i + 2];
            rgba[j + 3] = 255;
        }

        return bitmap;
    }

    /// <summary>Writes RGBA8888 (or, with <paramref name="bytesPerPixel"/> 3, RGB24) pixels as three planes, scaled, in the configured channel order, normalised.</summary>
    public static void WritePlanes(ReadOnlySpan<byte> rgba, PreprocessingConfig config, Span<float> destination, int bytesPerPixel = 4)
    {
        var plane = destination.Length / 3;
        var bgr = config.ChannelOrder == "bgr";
        Span<float> mul = stackalloc float[3];
        Span<float> add = stackalloc float[3];
        for (var c = 0; c < 3; c++)
        {
            // value = (pixel * scale - mean) / std, folded into one multiply-add.
            mul[c] = config.Scale / config.Std[c];
            add[c] = -config.Mean[c] / config.Std[c];
        }

        var first = destination[..plane];
        var second = destination.Slice(plane, plane);
        var third = destination.Slice(2 * plane, plane);
        for (var i = 0; i < plane; i++)
        {
            var at = bytesPerPixel * i;
            var r = rgba[at];
            var g = rgba[at + 1];
            var b = rgba[at + 2];
            first[i] = ((bgr ? b : r) * mul[0]) + add[0];
            second[i] = (g * mul[1]) + add[1];
            third[i] = ((bgr ? r : b) * mul[2]) + add[2];
        }
    }

    /// <summary>
    /// Reads the header of an encoded image: an undecodable input or one without pixels fails as
    /// <c>input_invalid</c>, one that declares more than <paramref name="maxPixels"/> as <c>input_too_large</c>.
    /// </summary>
    internal static SKCodec OpenCodec(SKData data, long maxPixels)
    {
        var codec = SKCodec.Create(data)
            ?? throw new JobFailureException(JobErrorCodes.InputInvalid, "The input is not a decodable image (JPEG, PNG, WebP, GIF or BMP).");
        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0)
        {
            codec.Dispose();
            throw new JobFailureException(JobErrorCodes.InputInvalid, "The image declares no pixels.");
        }

        if ((long)info.Width * info.Height > maxPixels)
        {
            codec.Dispose();
            throw new JobFailureException(JobErrorCodes.InputTooLarge,
                $"The image declares {info.Width}×{info.Height} pixels; the limit is {maxPixels:N0} pixels.");
        }

        return codec;
    }

    internal static SKSizeI OrientedSize(SKCodec codec) =>
        codec.EncodedOrigin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom
            ? new SKSizeI(codec.Info.Height, codec.Info.Width)
            : codec.Info.Size;

    /// <summary>
    /// The size to decode at: the smallest the codec can decode to that still covers
    /// <paramref name="width"/>×<paramref name="height"/> once oriented (a JPEG decodes at 1/2, 1/4
    /// or 1/8 of its size for less; other formats only at full size).
    /// </summary>
    internal static SKSizeI DecodeSize(SKCodec codec, SKSizeI oriented, int width, int height)
    {
        var scale = Math.Max((float)width / oriented.Width, (float)height / oriented.Height);
        if (scale < 1f)
        {
            var scaled = codec.GetScaledDimensions(scale);
            var shortest = Math.Min(scaled.Width, scaled.Height);
            var needed = (int)Math.Ceiling(Math.Min(codec.Info.Width, codec.Info.Height) * scale);
            if (shortest >= needed && scaled.Width > 0 && scaled.Height > 0)
            {
                return scaled;
            }
        }

        return codec.Info.Size;
    }

    internal static SKBitmap Decode(SKCodec codec, SKSizeI oriented, int width, int height)
    {
        var size = DecodeSize(codec, oriented, width, height);
        var info = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        var bitmap = new SKBitmap(info);
        try
        {
            Check(codec.GetPixels(info, bitmap.GetPixels()));
        }
        catch
        {
            bitmap.Dispose();
            throw;
        }

        return bitmap;
    }

    /// <summary>A decode that did not succeed fails the job as <c>input_invalid</c>.</summary>
    private static void Check(SKCodecResult result)
    {
        if (result != SKCodecResult.Success)
        {
            throw new JobFailureException(JobErrorCodes.InputInvalid, result == SKCodecResult.IncompleteInput
                ? "The image data is truncated."
                : $"The image could not be decoded ({result}).");
        }
    }

    internal static SKBitmap Orient(SKBitmap bitmap, SKEncodedOrigin origin)
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

}
