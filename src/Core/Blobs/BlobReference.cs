using System.Text;

namespace Async.Serving.Blobs;

/// <summary>
/// What the job store holds in place of a large input or output: <c>blob:&lt;name&gt;</c> in the
/// job's result key, and what the start script hands the worker for an input (which the job hash's
/// <c>input_blob</c> field references; a job stored before that field existed has it in its input
/// key). No input the API accepts starts with these bytes (every image and video is sniffed by its
/// magic first), and no output does (outputs are JSON objects), so a stored value says by itself
/// whether it is the bytes or a reference. A reference lasts as long as its key (or the field's
/// time); the blob sweep deletes blobs no job references.
/// </summary>
public static class BlobReference
{
    /// <summary>What every reference starts with; the job store's scripts test an output for it too (<c>RedisJobStore</c>).</summary>
    public const string Prefix = "blob:";

    /// <summary>The longest reference: the prefix and the longest name (<see cref="BlobNames.MaxLength"/>).</summary>
    private static readonly int MaxLength = Prefix.Length + BlobNames.MaxLength;

    private static readonly byte[] PrefixBytes = Encoding.ASCII.GetBytes(Prefix);

    public static byte[] Encode(string name)
    {
        if (!BlobNames.IsValid(name))
        {
            throw new ArgumentException($"'{name}' is not a blob name.", nameof(name));
        }

        return Encoding.ASCII.GetBytes(Prefix + name);
    }

    public static string EncodeText(string name) => Encoding.ASCII.GetString(Encode(name));

    /// <summary>The blob a stored value refers to, or null when the value is the bytes themselves.</summary>
    public static string? Decode(ReadOnlySpan<byte> value)
    {
        if (value.Length <= Prefix.Length || value.Length > MaxLength || !value.StartsWith(PrefixBytes))
        {
            return null;
        }

        var name = Encoding.ASCII.GetString(value[Prefix.Length..]);
        return BlobNames.IsValid(name) ? name : null;
    }

    /// <summary>The blob a stored text (an output) refers to, or null when it is the text itself.</summary>
    public static string? Decode(string? value) =>
        value is not null && value.Length > Prefix.Length && value.Length <= MaxLength && value.StartsWith(Prefix, StringComparison.Ordinal) && BlobNames.IsValid(value[Prefix.Length..])
            ? value[Prefix.Length..]
            : null;
}
