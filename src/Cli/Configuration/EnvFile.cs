namespace Async.Serving.Cli.Configuration;

/// <summary>
/// The <c>.serving/env</c> file that scripts/up.sh writes: <c>KEY=VALUE</c> lines, as a shell
/// would <c>source</c> them (comments, blank lines, an optional <c>export</c>, single or double quotes).
/// </summary>
public static class EnvFile
{
    public const string RelativePath = ".serving/env";

    public static IReadOnlyDictionary<string, string> Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            if (line.StartsWith("export ", StringComparison.Ordinal))
            {
                line = line["export ".Length..].TrimStart();
            }

            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                continue;
            }

            var name = line[..eq].Trim();
            var value = line[(eq + 1)..].Trim();
            if (value.Length >= 2 && (value[0] == '"' || value[0] == '\'') && value[^1] == value[0])
            {
                value = value[1..^1];
            }

            values[name] = value;
        }

        return values;
    }

    /// <summary>The nearest <c>.serving/env</c> in <paramref name="directory"/> or a folder above it, or null.</summary>
    public static string? Find(string directory)
    {
        for (var dir = new DirectoryInfo(directory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, RelativePath);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
