using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Async.Serving.Models;

namespace Async.Serving.Api.Cache;

/// <summary>
/// The identity of a model version's files, part of every cache key: each file of the version's
/// folder (config and weights, links followed) by name, size and last write time, and those of the
/// models it uses (a video model's embedding and OCR models). Read from the file system at each
/// lookup (a directory listing and a few stat calls, no file contents), so replacing a version's
/// files in place changes the key at once and its old entries are never served again.
/// </summary>
internal sealed class ModelFingerprints(ModelRepository models)
{
    public string Of(ModelEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var text = new StringBuilder();
        foreach (var model in (IEnumerable<ModelEntry>)[entry, .. models.Dependencies(entry)])
        {
            text.Append(model.Id).Append('\n');
            if (!Directory.Exists(model.Directory))
            {
                continue;
            }

            foreach (var path in Directory.EnumerateFiles(model.Directory, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                FileSystemInfo file = new FileInfo(path);
                if (file.LinkTarget is not null && file.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true } target)
                {
                    file = target;
                }

                var length = file is FileInfo { Exists: true } info ? info.Length : -1;
                text.Append(CultureInfo.InvariantCulture, $"{Path.GetRelativePath(model.Directory, path)}\t{length}\t{file.LastWriteTimeUtc.Ticks}\n");
            }
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())), 0, 16);
    }
}
