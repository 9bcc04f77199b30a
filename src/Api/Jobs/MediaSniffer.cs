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

    /// <summary>
    /// The container a video's first bytes announce (ISO BMFF/QuickTime, Matroska/WebM, AVI, MPEG
    /// transport and program streams, FLV, Ogg, ASF, animated GIF), or null. Whether the streams
    /// inside decode is for ffmpeg in the worker to find out.
    /// </summary>
    public static string? VideoType(ReadOnlySpan<byte> data) => data switch
    {
        [_, _, _, _, (byte)'f', (byte)'t', (byte)'y', (byte)'p', ..] => "video/mp4",
        [_, _, _, _, (byte)'m', (byte)'o', (byte)'o', (byte)'v', ..] or [_, _, _, _, (byte)'m', (byte)'d', (byte)'a', (byte)'t', ..]
            or [_, _, _, _, (byte)'w', (byte)'i', (byte)'d', (byte)'e', ..] or [_, _, _, _, (byte)'f', (byte)'r', (byte)'e', (byte)'e', ..] => "video/quicktime",
        [0x1A, 0x45, 0xDF, 0xA3, ..] => "video/x-matroska",
        [(byte)'R', (byte)'I', (byte)'F', (byte)'F', _, _, _, _, (byte)'A', (byte)'V', (byte)'I', (byte)' ', ..] => "video/x-msvideo",
        [0x00, 0x00, 0x01, 0xBA, ..] => "video/mpeg",
        [0x47, ..] when data.Length > 188 && data[188] == 0x47 => "video/mp2t",
        [(byte)'F', (byte)'L', (byte)'V', ..] => "video/x-flv",
        [(byte)'O', (byte)'g', (byte)'g', (byte)'S', ..] => "video/ogg",
        [0x30, 0x26, 0xB2, 0x75, ..] => "video/x-ms-asf",
        [(byte)'G', (byte)'I', (byte)'F', (byte)'8', ..] => "image/gif",
        _ => null,
    };

    /// <summary>Declared types a client may send for a video part; anything else is 415.</summary>
    public static bool IsAcceptableVideoContentType(string? contentType) =>
        string.IsNullOrEmpty(contentType)
        || contentType.StartsWith("video/", StringComparison.OrdinalIgnoreCase)
        || contentType.StartsWith("image/gif", StringComparison.OrdinalIgnoreCase)
        || contentType.StartsWith("application/octet-stream", StringComparison.OrdinalIgnoreCase);

    /// <summary>Declared types a client may send for an image part; anything else is 415.</summary>
    public static bool IsAcceptableImageContentType(string? contentType) =>
        string.IsNullOrEmpty(contentType)
        || contentType.StartsWith("image/", StringComparison.OrdinalIgnoreCase)
        || contentType.StartsWith("application/octet-stream", StringComparison.OrdinalIgnoreCase);
}
