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

    /// <summary>
    /// What a file that no pipeline here takes, or that belongs to the other kind of pipeline, is by
    /// its first bytes, for the refusal to name ("a TIFF image", "an MP4 or QuickTime video"); null
    /// when the bytes say nothing known.
    /// </summary>
    public static Sniffed? Describe(ReadOnlySpan<byte> data) => data switch
    {
        [_, _, _, _, (byte)'f', (byte)'t', (byte)'y', (byte)'p', .. var rest] when rest.Length >= 4 && StillImageBrand(rest[..4]) is { } brand => new(brand, SniffedKind.UnreadImage),
        [(byte)'I', (byte)'I', 0x2A, 0x00, ..] or [(byte)'M', (byte)'M', 0x00, 0x2A, ..] => new("a TIFF image", SniffedKind.UnreadImage),
        [0xFF, 0x0A, ..] or [0x00, 0x00, 0x00, 0x0C, (byte)'J', (byte)'X', (byte)'L', (byte)' ', ..] => new("a JPEG XL image", SniffedKind.UnreadImage),
        [(byte)'8', (byte)'B', (byte)'P', (byte)'S', ..] => new("a Photoshop document", SniffedKind.UnreadImage),
        [0x00, 0x00, 0x01, 0x00, ..] => new("an ICO icon", SniffedKind.UnreadImage),
        _ when LooksLikeSvg(data) => new("an SVG drawing", SniffedKind.UnreadImage),
        [(byte)'%', (byte)'P', (byte)'D', (byte)'F', ..] => new("a PDF document", SniffedKind.Other),
        _ when LooksLikeHtml(data) => new("an HTML page (a web page, not the file it shows: link the file itself)", SniffedKind.Other),
        _ when ImageType(data) is { } image => new(image switch
        {
            "image/jpeg" => "a JPEG image",
            "image/png" => "a PNG image",
            "image/gif" => "a GIF image",
            "image/webp" => "a WebP image",
            _ => "a BMP image",
        }, SniffedKind.Image),
        _ when VideoType(data) is { } video => new(video switch
        {
            "video/mp4" or "video/quicktime" => "an MP4 or QuickTime video",
            "video/x-matroska" => "a WebM or Matroska video",
            "video/x-msvideo" => "an AVI video",
            "video/mpeg" or "video/mp2t" => "an MPEG video",
            "video/x-flv" => "an FLV video",
            "video/ogg" => "an Ogg video",
            _ => "an ASF or WMV video",
        }, SniffedKind.Video),
        _ => null,
    };

    /// <summary>An ISO BMFF major brand of a still image (HEIC/HEIF, AVIF), which the video sniffer would take for an MP4.</summary>
    private static string? StillImageBrand(ReadOnlySpan<byte> brand) => brand switch
    {
        [(byte)'h', (byte)'e', (byte)'i', _] or [(byte)'h', (byte)'e', (byte)'v', _] or [(byte)'m', (byte)'i', (byte)'f', (byte)'1'] or [(byte)'m', (byte)'s', (byte)'f', (byte)'1'] => "a HEIC/HEIF image",
        [(byte)'a', (byte)'v', (byte)'i', _] => "an AVIF image",
        _ => null,
    };

    /// <summary>A web page: what an <c>input.url</c> copied from a browser's address bar often gives instead of the image.</summary>
    private static bool LooksLikeHtml(ReadOnlySpan<byte> data)
    {
        var text = TextStart(data);
        return StartsWithIgnoreCase(text, "<!doctype html"u8) || StartsWithIgnoreCase(text, "<html"u8);
    }

    private static bool LooksLikeSvg(ReadOnlySpan<byte> data)
    {
        var text = TextStart(data);
        return (text.StartsWith("<?xml"u8) || text.StartsWith("<svg"u8) || text.StartsWith("<!DOCTYPE svg"u8)) && text.IndexOf("<svg"u8) >= 0;
    }

    /// <summary>The first KiB of a text file, past a byte order mark and leading white space.</summary>
    private static ReadOnlySpan<byte> TextStart(ReadOnlySpan<byte> data) =>
        data[..Math.Min(data.Length, 1024)].TrimStart("\uFEFF"u8).TrimStart(" \t\r\n"u8);

    private static bool StartsWithIgnoreCase(ReadOnlySpan<byte> text, ReadOnlySpan<byte> prefix) =>
        text.Length >= prefix.Length && System.Text.Ascii.EqualsIgnoreCase(text[..prefix.Length], prefix);

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

/// <summary>What <see cref="MediaSniffer.Describe"/> found: a name to show, and what kind of thing it is.</summary>
public sealed record Sniffed(string Name, SniffedKind Kind);

public enum SniffedKind
{
    /// <summary>An image the image pipelines take.</summary>
    Image,

    /// <summary>A video container <c>video.analyze</c> takes.</summary>
    Video,

    /// <summary>An image format no pipeline here decodes (TIFF, HEIC, AVIF, JPEG XL, SVG, …).</summary>
    UnreadImage,

    /// <summary>Something else that is known by its bytes (a PDF, a web page).</summary>
    Other,
}
