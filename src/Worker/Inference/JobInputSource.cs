using Async.Serving.Blobs;
using Async.Serving.Jobs;

namespace Async.Serving.Worker.Inference;

/// <summary>
/// A job's input as the worker's start found it: the bytes themselves (kept in Redis), or a blob in
/// the blob store that the job store referenced (docs/blobs.md). A pipeline that can read a stream
/// (video: into its workspace file) never holds a blob whole; one whose decoder needs the bytes
/// (the image pipelines) reads it whole, which the API bounded at submit by
/// <c>Serving:Limits:MaxImageBytes</c> (20 MiB by default).
/// </summary>
internal sealed class JobInputSource
{
    private readonly byte[]? _bytes;
    private readonly IBlobStore? _blobs;

    private JobInputSource(byte[]? bytes, string? blob, IBlobStore? blobs)
    {
        _bytes = bytes;
        Blob = blob;
        _blobs = blobs;
    }

    /// <summary>The blob's name for an input in the blob store; null for one kept in Redis.</summary>
    public string? Blob { get; }

    public static JobInputSource FromBytes(byte[] bytes) => new(bytes ?? throw new ArgumentNullException(nameof(bytes)), null, null);

    /// <summary>What the job store's start returned: the bytes, or a reference to them.</summary>
    public static JobInputSource FromStored(byte[] stored, IBlobStore blobs) =>
        BlobReference.Decode(stored) is { } blob ? new(null, blob, blobs) : FromBytes(stored);

    /// <summary>All the bytes in memory.</summary>
    public async Task<byte[]> ReadAllAsync(CancellationToken cancellationToken)
    {
        if (_bytes is not null)
        {
            return _bytes;
        }

        var stream = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            if (stream.Length > Array.MaxLength)
            {
                throw new JobFailureException(JobErrorCodes.InputTooLarge, $"The input is {stream.Length:N0} bytes, more than this pipeline reads into memory.");
            }

            var bytes = GC.AllocateUninitializedArray<byte>((int)stream.Length);
            await stream.ReadExactlyAsync(bytes, cancellationToken).ConfigureAwait(false);
            return bytes;
        }
    }

    /// <summary>Writes the input to <paramref name="path"/>, streamed from the blob store for a blob.</summary>
    public async Task CopyToFileAsync(string path, CancellationToken cancellationToken)
    {
        if (_bytes is not null)
        {
            await File.WriteAllBytesAsync(path, _bytes, cancellationToken).ConfigureAwait(false);
            return;
        }

        var stream = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 128 * 1024, FileOptions.Asynchronous);
            await using (file.ConfigureAwait(false))
            {
                await stream.CopyToAsync(file, 128 * 1024, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task<Stream> OpenAsync(CancellationToken cancellationToken) =>
        await _blobs!.OpenReadAsync(Blob!, cancellationToken).ConfigureAwait(false)
            ?? throw new JobFailureException(JobErrorCodes.InputMissing, "The job's input is no longer in the blob store.");
}
