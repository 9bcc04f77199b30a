namespace Async.Serving.Api.Jobs;

/// <summary>Recognises encoded images by their first bytes, so a file that is not what it claims is refused at the door.</summary>
public static class MediaSniffer
{
    public static string? ImageType(ReadOnlySpan<byte> data) => data switch
    {
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => "image/png",
        [(byte)'G', (byte)'I', (byte)'F', (byte)'8', ..] => "image/gif",
        [(byte)'R', (byte)'I', (byte)'F', (byte)'F', _, _, _, _, (byte)'W', (byte)'E', (byte)'B', (byte)'P', ..] => "image/webp",
        [(byte)'B', (byte)'M', ..] when data.Length >= 26 => "image/bmp",
        _ => null,
    };

    /// <summary>Declared types a client may send for an image part; anything else is 415.</summary>
    public static bool IsAcceptableImageContentType(string? contentType) =>
        string.IsNullOrEmpty(contentType)
        || contentType.StartsWith("image/", StringComparison.OrdinalIgnoreCase)
        || contentType.StartsWith("application/octet-stream", StringComparison.OrdinalIgnoreCase);
}
