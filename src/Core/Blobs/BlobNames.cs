using System.Buffers;

namespace Async.Serving.Blobs;

/// <summary>
/// The blob store's layout: <c>uploads/{id}</c> for an input staged by the API before its job exists,
/// <c>inputs/{job id}</c> and <c>outputs/{job id}</c> for a job's input and output, and
/// <c>.partial/</c> for writes not yet committed. A name is checked before any store touches it.
/// </summary>
public static class BlobNames
{
    public const string Uploads = "uploads/";
    public const string Inputs = "inputs/";
    public const string Outputs = "outputs/";

    /// <summary>The folder of writes in progress (temporary files renamed into place on commit).</summary>
    public const string Partial = ".partial/";

    /// <summary>The longest name <see cref="IsValid"/> accepts.</summary>
    public const int MaxLength = 600;

    private static readonly SearchValues<char> Allowed = SearchValues.Create("abcdefghijklmnopqrstuvwxyz0123456789-_.");

    /// <summary>A staged upload: a fresh id, not a job's.</summary>
    public static string NewUpload() => Uploads + Guid.CreateVersion7().ToString("N");

    public static string Input(string jobId) => Inputs + Checked(jobId);

    public static string Output(string jobId) => Outputs + Checked(jobId);

    /// <summary>
    /// Whether <paramref name="name"/> is a blob name: one to four segments separated by <c>/</c>,
    /// each 1–128 characters of <c>a-z 0-9 - _ .</c>, none of them <c>.</c> or <c>..</c>, none
    /// starting with a dot. Nothing absolute, nothing climbing out, no other separator.
    /// </summary>
    public static bool IsValid(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxLength)
        {
            return false;
        }

        var segments = name.Split('/');
        return segments.Length <= 4 && segments.All(s => s.Length is > 0 and <= 128 && s[0] != '.' && !s.AsSpan().ContainsAnyExcept(Allowed));
    }

    private static string Checked(string segment) =>
        segment.Length is > 0 and <= 128 && segment[0] != '.' && !segment.AsSpan().ContainsAnyExcept(Allowed)
            ? segment
            : throw new ArgumentException($"'{segment}' cannot be part of a blob name.", nameof(segment));
}
