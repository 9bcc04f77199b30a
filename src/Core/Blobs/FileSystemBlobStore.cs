using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;

namespace Async.Serving.Blobs;

/// <summary>
/// The blob store on a file system: one host's folder, or a volume shared by every API and worker
/// (NFS, a Kubernetes ReadWriteMany volume, a compose named volume). A blob is written to a
/// temporary file under <c>.partial/</c>, flushed to disk and renamed into place, so a reader (or a
/// crash) never sees half a blob. Every name is checked (<see cref="BlobNames.IsValid"/>) and its full
/// path must lie under the root, so no name, however crafted, reaches another file.
/// </summary>
public sealed class FileSystemBlobStore : IBlobStore
{
    private const int BufferSize = 128 * 1024;
    private readonly string _root;
    private readonly TimeProvider _clock;

    public FileSystemBlobStore(IOptions<BlobOptions> options, TimeProvider clock)
    {
        ArgumentNullException.ThrowIfNull(options);
        _root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.Value.Root));
        _clock = clock;
    }

    /// <summary>The store's folder, absolute.</summary>
    public string Root => _root;

    /// <summary>The file of <paramref name="name"/>; throws for a name that is not a blob name or would leave the root.</summary>
    public string PathOf(string name)
    {
        if (!BlobNames.IsValid(name))
        {
            throw new ArgumentException($"'{name}' is not a blob name.", nameof(name));
        }

        var path = Path.GetFullPath(Path.Combine(_root, name));
        return path.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal)
            ? path
            : throw new ArgumentException($"'{name}' lies outside the blob store.", nameof(name));
    }

    public Task<BlobWriter> OpenWriteAsync(string name, CancellationToken cancellationToken)
    {
        var target = PathOf(name);
        var partial = Path.Combine(_root, BlobNames.Partial.TrimEnd('/'));
        Directory.CreateDirectory(partial);
        var temp = Path.Combine(partial, Guid.NewGuid().ToString("N") + ".part");
        var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferSize, FileOptions.Asynchronous);
        return Task.FromResult<BlobWriter>(new FileBlobWriter(name, target, temp, file));
    }

    public Task<Stream?> OpenReadAsync(string name, CancellationToken cancellationToken)
    {
        var path = PathOf(name);
        try
        {
            Stream stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, BufferSize,
                FileOptions.Asynchronous | FileOptions.SequentialScan);
            return Task.FromResult<Stream?>(stream);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return Task.FromResult<Stream?>(null);
        }
    }

    public Task<bool> MoveAsync(string from, string to, CancellationToken cancellationToken)
    {
        var source = PathOf(from);
        var target = PathOf(to);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Move(source, target, overwrite: true);
            // The sweep ages a blob by its last write: a moved blob is as young as its new reference.
            File.SetLastWriteTimeUtc(target, _clock.GetUtcNow().UtcDateTime);
            return Task.FromResult(true);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return Task.FromResult(false);
        }
    }

    public Task<bool> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        var path = PathOf(name);
        try
        {
            if (!File.Exists(path))
            {
                return Task.FromResult(false);
            }

            File.Delete(path);
            return Task.FromResult(true);
        }
        catch (DirectoryNotFoundException)
        {
            return Task.FromResult(false);
        }
    }

    public async IAsyncEnumerable<BlobEntry> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var folder = prefix.TrimEnd('/');
        if (!BlobNames.IsValid(folder))
        {
            throw new ArgumentException($"'{prefix}' is not a folder of the blob store.", nameof(prefix));
        }

        var directory = new DirectoryInfo(Path.Combine(_root, folder));
        if (!directory.Exists)
        {
            yield break;
        }

        await Task.Yield();
        var files = directory.EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 });
        foreach (var file in files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (file.LinkTarget is not null)
            {
                continue; // never a blob this store wrote
            }

            var name = Path.GetRelativePath(_root, file.FullName).Replace(Path.DirectorySeparatorChar, '/');
            yield return new BlobEntry(name, file.Length, new DateTimeOffset(file.LastWriteTimeUtc, TimeSpan.Zero));
        }
    }

    public Task<int> DeleteAbandonedWritesAsync(TimeSpan olderThan, CancellationToken cancellationToken)
    {
        var partial = new DirectoryInfo(Path.Combine(_root, BlobNames.Partial.TrimEnd('/')));
        var deleted = 0;
        if (!partial.Exists)
        {
            return Task.FromResult(deleted);
        }

        var before = _clock.GetUtcNow().UtcDateTime - olderThan;
        foreach (var file in partial.EnumerateFiles("*.part"))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (file.LastWriteTimeUtc < before)
            {
                try
                {
                    file.Delete();
                    deleted++;
                }
                catch (IOException)
                {
                    // Gone meanwhile, or busy: the next sweep looks again.
                }
            }
        }

        return Task.FromResult(deleted);
    }

    private sealed class FileBlobWriter(string name, string target, string temp, FileStream file) : BlobWriter
    {
        private bool _committed;

        public override string Name => name;

        public override void Write(byte[] buffer, int offset, int count) => file.Write(buffer, offset, count);

        public override void Write(ReadOnlySpan<byte> buffer) => file.Write(buffer);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            file.WriteAsync(buffer, offset, count, cancellationToken);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            file.WriteAsync(buffer, cancellationToken);

        public override void Flush() => file.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => file.FlushAsync(cancellationToken);

        public override async Task CommitAsync(CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(_committed, this);
            await file.FlushAsync(cancellationToken).ConfigureAwait(false);
            file.Flush(flushToDisk: true); // on disk before it has a name: a crash leaves all of it or nothing
            await file.DisposeAsync().ConfigureAwait(false);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Move(temp, target, overwrite: true);
            _committed = true;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                file.Dispose();
                if (!_committed)
                {
                    TryDelete(temp);
                }
            }

            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            await file.DisposeAsync().ConfigureAwait(false);
            if (!_committed)
            {
                TryDelete(temp);
            }

            await base.DisposeAsync().ConfigureAwait(false);
        }

        private static void TryDelete(string path)
        {
            try
            {
                File.Delete(path);
            }
            catch (IOException)
            {
                // Left for the sweep, which deletes old files under .partial/.
            }
        }
    }
}
