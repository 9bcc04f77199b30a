using System.Collections.Frozen;

namespace Async.Serving.Cli.Submit;

public enum MediaKind
{
    Unknown,
    Image,
    Video,
}

/// <summary>
/// One file to submit: <see cref="RelativePath"/> is its path below the folder or glob base it was
/// found in (its name, for a file given by name); <c>--out</c> keeps that layout.
/// </summary>
public sealed record InputFile(string FullPath, string RelativePath)
{
    public MediaKind Kind => MediaKinds.Of(FullPath);
}

/// <summary>What a file is, by its extension: the folder filter and the default pipeline go by it.</summary>
public static class MediaKinds
{
    private static readonly FrozenSet<string> Images =
        new[] { ".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp" }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    private static readonly FrozenSet<string> Videos =
        new[] { ".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".m2ts", ".flv", ".ogv", ".ogg", ".wmv", ".asf" }
            .ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    public static MediaKind Of(string path)
    {
        var extension = Path.GetExtension(path);
        return Images.Contains(extension) ? MediaKind.Image : Videos.Contains(extension) ? MediaKind.Video : MediaKind.Unknown;
    }

    /// <summary>The pipeline a file goes to when <c>--pipeline</c> is not given: images are embedded, videos analysed.</summary>
    public static string? DefaultPipeline(MediaKind kind) => kind switch
    {
        MediaKind.Image => "image.embed",
        MediaKind.Video => "video.analyze",
        _ => null,
    };
}
