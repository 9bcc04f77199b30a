namespace Async.Serving.Blobs;

/// <summary>
/// Where inputs and outputs too large for Redis live (docs/blobs.md): named byte streams, written
/// once and atomically (a reader sees a whole blob or none), read as streams, deleted by name. The
/// job store keeps only a reference (<see cref="BlobReference"/>). Names are relative paths of
/// lower-case letters, digits, <c>-</c>, <c>_</c> and <c>.</c> segments (<see cref="BlobNames"/>); a
/// store refuses any other, so a name can never reach outside the store.
/// </summary>
public interface IBlobStore
{
    /// <summary>
    /// A new blob's writer: bytes written to it are invisible until <see cref="BlobWriter.CommitAsync"/>,
    /// which replaces any blob of that name at once; disposed uncommitted, it leaves nothing behind.
    /// </summary>
    Task<BlobWriter> OpenWriteAsync(string name, CancellationToken cancellationToken);

    /// <summary>The blob's bytes as a stream (seekable where the store allows it), or null when there is no such blob.</summary>
    Task<Stream?> OpenReadAsync(string name, CancellationToken cancellationToken);

    /// <summary>Renames a blob (atomic in the file system store); false when <paramref name="from"/> does not exist.</summary>
    Task<bool> MoveAsync(string from, string to, CancellationToken cancellationToken);

    /// <summary>Deletes a blob; false when there was none.</summary>
    Task<bool> DeleteAsync(string name, CancellationToken cancellationToken);

    /// <summary>The blobs in the folder <paramref name="prefix"/> (such as <c>inputs/</c>), at any depth.</summary>
    IAsyncEnumerable<BlobEntry> ListAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>Deletes uncommitted writes not touched for <paramref name="olderThan"/> (a writer that died); returns how many.</summary>
    Task<int> DeleteAbandonedWritesAsync(TimeSpan olderThan, CancellationToken cancellationToken);
}

/// <summary>One blob: its name, size and when it was last written (UTC).</summary>
public sealed record BlobEntry(string Name, long Length, DateTimeOffset LastModified);

/// <summary>A blob being written: a stream that becomes the blob on <see cref="CommitAsync"/>, and is discarded when disposed before.</summary>
public abstract class BlobWriter : Stream
{
    /// <summary>The blob's name once committed.</summary>
    public abstract string Name { get; }

    /// <summary>Flushes, closes and publishes the blob under <see cref="Name"/> in one step.</summary>
    public abstract Task CommitAsync(CancellationToken cancellationToken);

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
