namespace Async.Serving.Cli.Submit;

/// <summary>
/// Where a job's result goes: <c>&lt;input&gt;.&lt;pipeline&gt;.json</c> next to the input (for
/// example <c>cat.jpg.image.embed.json</c>), or with <c>--out DIR</c> the same name under DIR at
/// the input's path below the folder or glob it came from.
/// </summary>
public static class ResultPaths
{
    public static string For(InputFile input, string pipeline, string? outDirectory)
    {
        ArgumentNullException.ThrowIfNull(input);
        var suffix = "." + pipeline + ".json";
        return outDirectory is null
            ? input.FullPath + suffix
            : Path.Combine(Path.GetFullPath(outDirectory), input.RelativePath + suffix);
    }

    /// <summary>Writes the result through a temporary file and a rename, so an interrupted run never leaves half a result that a rerun would skip.</summary>
    public static async Task WriteAsync(string path, string json, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temporary = path + ".partial";
        await File.WriteAllTextAsync(temporary, json, cancellationToken).ConfigureAwait(false);
        File.Move(temporary, path, overwrite: true);
    }
}
