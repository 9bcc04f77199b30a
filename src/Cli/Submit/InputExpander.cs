using Microsoft.Extensions.FileSystemGlobbing;
using Microsoft.Extensions.FileSystemGlobbing.Abstractions;

namespace Async.Serving.Cli.Submit;

/// <summary>
/// Turns the arguments of <c>serving submit</c> into files: a file is taken as it is; a folder gives
/// every image and video file below it (by extension, hidden ones left out); a glob (<c>*</c>,
/// <c>?</c>, <c>**</c>, expanded here so that it works quoted and on every shell) gives the files it
/// matches. Each file once, in a stable order. An argument that matches nothing is a usage error.
/// </summary>
public static class InputExpander
{
    private static readonly char[] Wildcards = ['*', '?'];

    private static readonly EnumerationOptions FolderWalk = new()
    {
        RecurseSubdirectories = true,
        IgnoreInaccessible = true,
        AttributesToSkip = FileAttributes.Hidden | FileAttributes.System,
    };

    public static IReadOnlyList<InputFile> Expand(IEnumerable<string> arguments, string currentDirectory)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var files = new List<InputFile>();
        foreach (var argument in arguments)
        {
            var found = ExpandOne(argument, currentDirectory);
            if (found.Count == 0)
            {
                throw new CliUsageException(Directory.Exists(Path.GetFullPath(argument, currentDirectory))
                    ? $"The folder '{argument}' holds no image or video files."
                    : $"'{argument}' matches no file.");
            }

            files.AddRange(found.Where(f => seen.Add(f.FullPath)));
        }

        return files;
    }

    private static List<InputFile> ExpandOne(string argument, string currentDirectory)
    {
        var path = Path.GetFullPath(argument, currentDirectory);
        if (File.Exists(path))
        {
            return [new InputFile(path, Path.GetFileName(path))];
        }

        if (Directory.Exists(path))
        {
            return [.. Directory.EnumerateFiles(path, "*", FolderWalk)
                .Where(f => MediaKinds.Of(f) != MediaKind.Unknown)
                .Order(StringComparer.Ordinal)
                .Select(f => new InputFile(f, Path.GetRelativePath(path, f)))];
        }

        if (argument.IndexOfAny(Wildcards) < 0)
        {
            return [];
        }

        var (root, pattern) = SplitGlob(argument, currentDirectory);
        if (!Directory.Exists(root))
        {
            return [];
        }

        var matcher = new Matcher(StringComparison.Ordinal);
        matcher.AddInclude(pattern);
        return [.. matcher.Execute(new DirectoryInfoWrapper(new DirectoryInfo(root))).Files
            .Select(m => m.Path)
            .Order(StringComparer.Ordinal)
            .Select(rel => new InputFile(Path.GetFullPath(rel, root), rel.Replace('/', Path.DirectorySeparatorChar)))];
    }

    /// <summary>The folder before the first segment with a wildcard, and the rest as the pattern.</summary>
    internal static (string Root, string Pattern) SplitGlob(string glob, string currentDirectory)
    {
        var segments = glob.Replace('\\', '/').Split('/');
        var first = Array.FindIndex(segments, s => s.IndexOfAny(Wildcards) >= 0);
        var rootText = string.Join('/', segments[..first]);
        var root = first == 0 ? currentDirectory
            : rootText.Length == 0 ? "/" // an absolute glob such as /*.jpg
            : Path.GetFullPath(rootText, currentDirectory);
        return (root, string.Join('/', segments[first..]));
    }
}
