using System.Buffers;

namespace Async.Serving.Worker.Video;

/// <summary>
/// One sampled frame: packed RGB24 pixels in a pooled buffer (return it with <see cref="Dispose"/>),
/// its index in the sample sequence and its time in the video.
/// </summary>
internal sealed class VideoFrame(int index, double time, int width, int height, byte[] pixels) : IDisposable
{
    private byte[]? _pixels = pixels;

    public int Index { get; } = index;

    public double Time { get; } = time;

    public int Width { get; } = width;

    public int Height { get; } = height;

    public ReadOnlySpan<byte> Pixels => (_pixels ?? throw new ObjectDisposedException(nameof(VideoFrame))).AsSpan(0, Width * Height * 3);

    /// <summary>An unpooled copy of the pixels, for work that outlives the frame.</summary>
    public byte[] CopyPixels() => Pixels.ToArray();

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _pixels, null) is { } buffer)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

/// <summary>What ffprobe says about a file.</summary>
internal sealed record VideoProbe(double? DurationSeconds, int Width, int Height, string Codec, string Format);
