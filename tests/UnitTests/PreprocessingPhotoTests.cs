using Async.Serving.Fixtures;
using Async.Serving.Models;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Inference;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;
using SkiaSharp;
using Xunit.Abstractions;

namespace Async.Serving.UnitTests;

/// <summary>
/// The fast preprocessing path (DCT-scaled decode, then <see cref="PlanarResampler"/> straight into
/// the tensor) against the path it replaced (<see cref="ReferencePreprocessor"/>, Skia draws), on
/// real photographs (<see cref="Photographs"/>) through the real ResNet-18: the embeddings stay
/// the same picture's.
/// </summary>
public sealed class PreprocessingPhotoTests(ITestOutputHelper output) : IDisposable
{
    private readonly ResNet _model = new();

    public void Dispose() => _model.Dispose();

    public static TheoryData<string, int, int> Sizes()
    {
        var data = new TheoryData<string, int, int>();
        foreach (var name in Photographs.Names)
        {
            data.Add(name, 640, 480);
            data.Add(name, 1280, 960);
            data.Add(name, 480, 640);
        }

        data.Add("coffee", 4000, 3000);
        data.Add("motorcycle_left", 3000, 4000);
        data.Add("chelsea", 225, 150); // smaller than the input: enlarged
        return data;
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void A_jpeg_embeds_as_it_did_before(string name, int width, int height)
    {
        var jpeg = Photographs.Jpeg(name, width, height);

        var before = _model.Input(planes => ReferencePreprocessor.Preprocess(jpeg, _model.Config, planes));
        var now = _model.Input(planes => ImagePreprocessor.Preprocess(jpeg, _model.Config, long.MaxValue, planes));

        var cosine = Cosine(_model.Embed(before), _model.Embed(now));
        var difference = MeanAbsoluteDifference(before, now);
        output.WriteLine($"{name} {width}×{height}: cosine {cosine:F5}, mean |Δ| {difference:F2} of 255");
        Assert.True(cosine >= 0.99, $"cosine {cosine}");
        Assert.True(difference < 4, $"mean |Δ| {difference}");
    }

    [Fact]
    public void A_large_png_without_dct_scaling_is_averaged_like_before()
    {
        using var bitmap = SKBitmap.Decode(Photographs.Jpeg("astronaut", 2400, 1800));
        using var image = SKImage.FromBitmap(bitmap);
        var png = image.Encode(SKEncodedImageFormat.Png, 100).ToArray();

        var before = _model.Input(planes => ReferencePreprocessor.Preprocess(png, _model.Config, planes));
        var now = _model.Input(planes => ImagePreprocessor.Preprocess(png, _model.Config, long.MaxValue, planes));

        var cosine = Cosine(_model.Embed(before), _model.Embed(now));
        output.WriteLine($"PNG 2400×1800: cosine {cosine:F5}, mean |Δ| {MeanAbsoluteDifference(before, now):F2}");
        Assert.True(cosine >= 0.99, $"cosine {cosine}");
    }

    [Theory]
    [InlineData(SKEncodedOrigin.TopRight)]
    [InlineData(SKEncodedOrigin.BottomRight)]
    [InlineData(SKEncodedOrigin.BottomLeft)]
    [InlineData(SKEncodedOrigin.LeftTop)]
    [InlineData(SKEncodedOrigin.RightTop)]
    [InlineData(SKEncodedOrigin.RightBottom)]
    [InlineData(SKEncodedOrigin.LeftBottom)]
    public void Exif_orientation_turns_the_picture_upright(SKEncodedOrigin origin)
    {
        // A landscape picture whose crop is off-centre once turned wrongly, so every mistake shows.
        var upright = Photographs.Jpeg("motorcycle_left", 1280, 800);
        var turned = Photographs.Jpeg("motorcycle_left", 1280, 800, origin: origin);
        using (var codec = SKCodec.Create(SKData.CreateCopy(turned)))
        {
            Assert.Equal(origin, codec.EncodedOrigin);
        }

        var expected = _model.Input(planes => ImagePreprocessor.Preprocess(upright, _model.Config, long.MaxValue, planes));
        var actual = _model.Input(planes => ImagePreprocessor.Preprocess(turned, _model.Config, long.MaxValue, planes));
        var reference = _model.Input(planes => ReferencePreprocessor.Preprocess(turned, _model.Config, planes));
        var ignored = _model.Input(planes => ImagePreprocessor.Preprocess(StripExif(turned), _model.Config, long.MaxValue, planes));

        var right = MeanAbsoluteDifference(expected, actual);
        var wrong = MeanAbsoluteDifference(expected, ignored);
        output.WriteLine($"{origin}: mean |Δ| to upright {right:F2}, to the reference path {MeanAbsoluteDifference(reference, actual):F2}, with the tag ignored {wrong:F2}");
        Assert.True(right < 4, $"mean |Δ| to the upright picture {right}");
        Assert.True(MeanAbsoluteDifference(reference, actual) < 4, "the reference path turns it the same way");
        Assert.True(wrong > 4 * right, $"ignoring the tag should differ: {wrong} vs {right}");
    }

    [Fact]
    public void A_video_frame_is_resized_as_an_encoded_image_is()
    {
        // The same pixels as RGB24 (a frame from ffmpeg) and as a PNG: the same planes, odd width included.
        using var decoded = SKBitmap.Decode(Photographs.Jpeg("rocket", 479, 361));
        using var bitmap = decoded.Copy(SKColorType.Rgba8888);
        var rgb = new byte[3 * bitmap.Width * bitmap.Height];
        var rgba = bitmap.GetPixelSpan();
        for (int i = 0, o = 0; o < rgb.Length; i += 4, o += 3)
        {
            (rgb[o], rgb[o + 1], rgb[o + 2]) = (rgba[i], rgba[i + 1], rgba[i + 2]);
        }

        using var image = SKImage.FromBitmap(bitmap);
        var png = image.Encode(SKEncodedImageFormat.Png, 100).ToArray();
        var frame = _model.Input(planes => ImagePreprocessor.PreprocessRgb(rgb, bitmap.Width, bitmap.Height, _model.Config, planes));
        var encoded = _model.Input(planes => ImagePreprocessor.Preprocess(png, _model.Config, long.MaxValue, planes));

        Assert.True(MeanAbsoluteDifference(frame, encoded) < 0.01, $"mean |Δ| {MeanAbsoluteDifference(frame, encoded)}");
    }

    /// <summary>The JPEG without the APP1 segment <see cref="Photographs"/> inserted after SOI.</summary>
    private static byte[] StripExif(byte[] jpeg)
    {
        Assert.Equal(0xE1, jpeg[3]);
        var length = (jpeg[4] << 8) | jpeg[5];
        return [.. jpeg.AsSpan(0, 2), .. jpeg.AsSpan(4 + length)];
    }

    private static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += a[i] * (double)b[i];
            na += a[i] * (double)a[i];
            nb += b[i] * (double)b[i];
        }

        return dot / Math.Sqrt(na * nb);
    }

    private static double MeanAbsoluteDifference(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Average();

    /// <summary>ResNet-18 of the repository (0–255 RGB planes in), run on one input at a time.</summary>
    private sealed class ResNet : IDisposable
    {
        private readonly InferenceSession _session;
        private readonly ModelEntry _entry;

        public ResNet()
        {
            var models = Environment.GetEnvironmentVariable("Serving__Models__Path") is { Length: > 0 } path ? path : Path.Combine(OcrModelFixture.RepositoryRoot(), "models");
            _entry = ModelRepository.Load(models, requireWeights: true).Resolve("resnet18@1") ?? throw new InvalidOperationException("models/resnet18/1 is missing.");
            (_session, _) = new OnnxSessionFactory(new WorkerOptions(), NullLogger<OnnxSessionFactory>.Instance).Create(_entry.ModelPath, "cpu");
        }

        public PreprocessingConfig Config => _entry.Config.Preprocessing;

        public float[] Input(Action<float[]> fill)
        {
            var planes = new float[3 * Config.Width * Config.Height];
            fill(planes);
            return planes;
        }

        public float[] Embed(float[] planes)
        {
            using var input = OrtValue.CreateTensorValueFromMemory(planes, [1, 3, Config.Height, Config.Width]);
            using var options = new RunOptions();
            using var results = _session.Run(options, [_entry.Config.Input.Name], [input], [_entry.Config.Output.Name]);
            return results[0].GetTensorDataAsSpan<float>().ToArray();
        }

        public void Dispose() => _session.Dispose();
    }
}
