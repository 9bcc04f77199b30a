using Async.Serving.Fixtures;

namespace Async.Serving.IntegrationTests;

/// <summary>Test inputs: photo-like scenes (<see cref="SceneImages"/>) and broken files.</summary>
public static class TestImages
{
    /// <summary>A scene; the same seed with another size, crop, exposure and JPEG quality is a near-duplicate.</summary>
    public static byte[] Scene(int seed, int width = 640, int height = 480, float crop = 0f, float brightness = 1f, int quality = 90) =>
        SceneImages.Scene(seed, width, height, crop, brightness, quality);

    /// <summary>A JPEG cut off half way: the right magic bytes, but no complete image.</summary>
    public static byte[] TruncatedJpeg()
    {
        var jpeg = Scene(99);
        return jpeg[..(jpeg.Length / 2)];
    }
}
