using SkiaSharp;

namespace Async.Serving.Images;

/// <summary>
/// Reads an encoded image's dimensions from its header without decoding a pixel. The API uses it
/// to refuse oversized images at the door, the worker's preprocessing repeats the check before it
/// decodes.
/// </summary>
public static class ImageHeader
{
    /// <summary>Width and height from the header; null when SkiaSharp cannot read the header (not an image, or a damaged one).</summary>
    public static SKSizeI? ReadSize(ReadOnlySpan<byte> encoded)
    {
        if (encoded.IsEmpty)
        {
            return null;
        }

        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data);
        return codec?.Info.Size;
    }
}
