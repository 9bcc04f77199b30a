using Async.Serving.Api.Jobs;
using Async.Serving.Images;
using Async.Serving.Models;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Inference;
using SkiaSharp;

namespace Async.Serving.UnitTests;

public sealed class ImagePreprocessorTests
{
    private static byte[] Encode(SKBitmap bitmap, SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 95);
        return data.ToArray();
    }

    private static byte[] Solid(int width, int height, SKColor color, SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        using var bitmap = new SKBitmap(width, height);
        bitmap.Erase(color);
        return Encode(bitmap, format);
    }

    [Fact]
    public void Pixels_become_planes_in_the_configured_order_and_normalisation()
    {
        var config = new PreprocessingConfig { Width = 4, Height = 4, ChannelOrder = "bgr", Scale = 1f / 255, Mean = [0.5f, 0.5f, 0.5f], Std = [0.5f, 0.5f, 0.5f] };
        var planes = new float[3 * 16];

        ImagePreprocessor.Preprocess(Solid(16, 8, new SKColor(255, 0, 51)), config, 1_000_000, planes);

        // BGR: blue plane first. (v/255 - 0.5) / 0.5 maps 0 → -1, 255 → 1, 51 → -0.6.
        Assert.All(planes[..16], v => Assert.Equal(-0.6f, v, 3));
        Assert.All(planes[16..32], v => Assert.Equal(-1f, v, 3));
        Assert.All(planes[32..], v => Assert.Equal(1f, v, 3));
    }

    [Fact]
    public void Center_crop_keeps_the_middle_of_a_wide_image()
    {
        // Left and right thirds red, middle third green: a centre crop to a square sees only green.
        using var bitmap = new SKBitmap(300, 100);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.Red);
            using var paint = new SKPaint { Color = SKColors.Lime };
            canvas.DrawRect(100, 0, 100, 100, paint);
        }

        var config = new PreprocessingConfig { Width = 8, Height = 8 };
        var planes = new float[3 * 64];
        ImagePreprocessor.Preprocess(Encode(bitmap), config, 1_000_000, planes);

        Assert.All(planes[..64], r => Assert.True(r < 30, $"red {r}"));
        Assert.All(planes[64..128], g => Assert.True(g > 225, $"green {g}"));
    }

    [Fact]
    public void A_truncated_jpeg_fails_as_invalid_input()
    {
        var jpeg = Solid(640, 480, SKColors.CadetBlue, SKEncodedImageFormat.Jpeg);
        var truncated = jpeg[..(jpeg.Length / 2)];
        var error = Assert.Throws<JobFailureException>(() =>
            ImagePreprocessor.Preprocess(truncated, new PreprocessingConfig(), 100_000_000, new float[3 * 224 * 224]));
        Assert.Equal("input_invalid", error.Code);
    }

    [Fact]
    public void Bytes_that_are_no_image_fail_as_invalid_input()
    {
        var error = Assert.Throws<JobFailureException>(() =>
            ImagePreprocessor.Preprocess("definitely not an image"u8, new PreprocessingConfig(), 100_000_000, new float[3 * 224 * 224]));
        Assert.Equal("input_invalid", error.Code);
    }

    [Fact]
    public void An_image_declaring_too_many_pixels_is_refused_before_decoding()
    {
        var png = Solid(400, 300, SKColors.Gray);
        var error = Assert.Throws<JobFailureException>(() =>
            ImagePreprocessor.Preprocess(png, new PreprocessingConfig(), maxPixels: 100_000, new float[3 * 224 * 224]));
        Assert.Equal("input_too_large", error.Code);
        Assert.Equal(new SKSizeI(400, 300), ImageHeader.ReadSize(png));
    }

    [Fact]
    public void Unit_length_after_normalisation()
    {
        float[] v = [3, 4, 0];
        VectorMath.NormalizeL2(v);
        Assert.Equal([0.6f, 0.8f, 0f], v);
        float[] zero = [0, 0];
        VectorMath.NormalizeL2(zero);
        Assert.Equal([0f, 0f], zero);
    }

    [Theory]
    [InlineData(SKEncodedImageFormat.Jpeg, "image/jpeg")]
    [InlineData(SKEncodedImageFormat.Png, "image/png")]
    [InlineData(SKEncodedImageFormat.Webp, "image/webp")]
    public void The_sniffer_knows_encoded_images(SKEncodedImageFormat format, string expected) =>
        Assert.Equal(expected, MediaSniffer.ImageType(Solid(8, 8, SKColors.Black, format)));

    [Theory]
    [InlineData("49492A00080000000E00", "a TIFF image")]
    [InlineData("4D4D002A00000008000E", "a TIFF image")]
    [InlineData("0000001C6674797068656963000000006D696631", "a HEIC/HEIF image")]
    [InlineData("0000001C667479706D696631000000006D696631", "a HEIC/HEIF image")]
    [InlineData("0000001C6674797061766966000000006D696631", "an AVIF image")]
    [InlineData("0000000C4A584C200D0A870A", "a JPEG XL image")]
    [InlineData("FF0AFA7F", "a JPEG XL image")]
    [InlineData("255044462D312E370A", "a PDF document")]
    [InlineData("38425053000100000000", "a Photoshop document")]
    [InlineData("00000100010010100000", "an ICO icon")]
    [InlineData("000000206674797069736F6D0000020069736F6D", "an MP4 or QuickTime video")]
    [InlineData("1A45DFA3A34286810142F7", "a WebM or Matroska video")]
    [InlineData("FFD8FFE000104A464946", "a JPEG image")]
    [InlineData("0102030405060708", null)]
    public void The_sniffer_names_what_it_refuses(string hex, string? expected) =>
        Assert.Equal(expected, MediaSniffer.Describe(Convert.FromHexString(hex))?.Name);

    [Fact]
    public void The_sniffer_names_an_svg_drawing_and_a_web_page_however_they_start()
    {
        Assert.Equal("an SVG drawing", MediaSniffer.Describe("\uFEFF<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>"u8)?.Name);
        Assert.Equal("an SVG drawing", MediaSniffer.Describe("  <svg viewBox=\"0 0 1 1\"></svg>"u8)?.Name);
        Assert.Null(MediaSniffer.Describe("<?xml version=\"1.0\"?><note/>"u8));
        Assert.StartsWith("an HTML page", MediaSniffer.Describe("\n  <!DOCTYPE html>\n<html lang=\"en\"><img src=\"cat.jpg\">"u8)?.Name, StringComparison.Ordinal);
        Assert.StartsWith("an HTML page", MediaSniffer.Describe("<HTML><BODY>"u8)?.Name, StringComparison.Ordinal);
    }

    [Fact]
    public void The_sniffer_refuses_other_bytes()
    {
        Assert.Null(MediaSniffer.ImageType("GIF"u8));
        Assert.Null(MediaSniffer.ImageType("%PDF-1.7 ..."u8));
        Assert.Null(MediaSniffer.ImageType([]));
    }
}
