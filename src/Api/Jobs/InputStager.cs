using System.Buffers;
using System.Security.Cryptography;
using Async.Serving.Blobs;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Jobs;

/// <summary>
/// A submit's input as it was read: its bytes in memory when it is at most
/// <c>Serving:Blobs:InlineThreshold</c>, else staged in the blob store (<see cref="Blob"/>, an
/// <c>uploads/</c> name until its job takes it over); either way its size, its SHA-256 (computed
/// while it streamed: the result cache and the Idempotency-Key fingerprint use it) and its first bytes
/// (<see cref="Head"/>, for the media checks).
/// </summary>
public sealed class StagedInput
{
    internal StagedInput(byte[]? bytes, string? blob, long length, byte[] sha256, byte[] head)
    {
        Bytes = bytes;
        Blob = blob;
        Length = length;
        Sha256 = sha256;
        Head = head;
    }

    /// <summary>The bytes, for an input kept in Redis; null for one in the blob store.</summary>
    public byte[]? Bytes { get; }

    /// <summary>The staged blob's name, for an input in the blob store; null for one kept in Redis.</summary>
    public string? Blob { get; }

    public long Length { get; }

    public byte[] Sha256 { get; }

    /// <summary>The first bytes: all of them for an inline input, at least 64 KiB of a staged one.</summary>
    public ReadOnlyMemory<byte> Head { get; }

    /// <summary>An input no bytes were read for yet (a submission whose fields are checked first).</summary>
    public static readonly StagedInput None = new([], null, 0, SHA256.HashData([]), []);

    /// <summary>An input held in memory, whatever its size (tests, and callers that already hold it).</summary>
    public static StagedInput InMemory(byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        return new StagedInput(bytes, null, bytes.Length, SHA256.HashData(bytes), bytes);
    }
}

/// <summary>
/// Reads inputs at submit into a <see cref="StagedInput"/> without holding a large one whole in
/// memory: the first <c>InlineThreshold</c> bytes (at least 64 KiB) are buffered; an input that ends
/// within the threshold stays in memory (it goes to Redis with its job, as before), a longer one is
/// written on to a blob (<c>uploads/…</c>) as it arrives, hashed on the way, and refused as soon as it
/// passes its limit. A staged blob whose submit makes no job is deleted (<see cref="DiscardAsync"/>);
/// one left by a crash is removed by the blob sweep (<see cref="Maintenance.MaintenanceJobs.SweepBlobsAsync"/>).
/// </summary>
internal sealed partial class InputStager(IBlobStore blobs, IOptions<BlobOptions> options, ILogger<InputStager> logger)
{
    private const int MinHead = 64 * 1024;
    private const int Chunk = 128 * 1024;

    /// <summary>Reads <paramref name="source"/> to its end; null when it is longer than <paramref name="maxBytes"/> (nothing is kept then).</summary>
    public async Task<StagedInput?> StageAsync(Stream source, long maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        var inlineMax = Math.Min(options.Value.InlineThreshold, maxBytes);
        var headSize = (int)Math.Min(Math.Max(inlineMax + 1, MinHead), maxBytes + 1);
        var buffer = ArrayPool<byte>.Shared.Rent(headSize);
        try
        {
            var read = 0;
            int n;
            while (read < headSize && (n = await source.ReadAsync(buffer.AsMemory(read, headSize - read), cancellationToken).ConfigureAwait(false)) > 0)
            {
                read += n;
            }

            if (read > maxBytes)
            {
                return null;
            }

            if (read <= inlineMax)
            {
                // The head buffer holds more than the threshold, so an input within it has ended.
                var bytes = buffer.AsSpan(0, read).ToArray();
                return new StagedInput(bytes, null, read, SHA256.HashData(bytes), bytes);
            }

            return await WriteBlobAsync(buffer.AsMemory(0, read), source, maxBytes, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Bytes already in memory (a decoded <c>input.base64</c>): kept inline up to the threshold, else written to a blob.</summary>
    public async Task<StagedInput> StageAsync(byte[] bytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        if (bytes.Length <= options.Value.InlineThreshold)
        {
            return StagedInput.InMemory(bytes);
        }

        return (await WriteBlobAsync(bytes, Stream.Null, long.MaxValue, cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>Deletes a staged blob whose submit made no job (a refusal, a replay, a failure); nothing for an inline input.</summary>
    public async Task DiscardAsync(StagedInput? input)
    {
        if (input?.Blob is not { } blob)
        {
            return;
        }

        try
        {
            await blobs.DeleteAsync(blob, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogDiscardFailed(logger, blob, ex.Message);
        }
    }

    private async Task<StagedInput?> WriteBlobAsync(ReadOnlyMemory<byte> head, Stream rest, long maxBytes, CancellationToken cancellationToken)
    {
        var name = BlobNames.NewUpload();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var writer = await blobs.OpenWriteAsync(name, cancellationToken).ConfigureAwait(false);
        await using (writer.ConfigureAwait(false))
        {
            hash.AppendData(head.Span);
            await writer.WriteAsync(head, cancellationToken).ConfigureAwait(false);
            long length = head.Length;
            var chunk = ArrayPool<byte>.Shared.Rent(Chunk);
            try
            {
                int n;
                while ((n = await rest.ReadAsync(chunk.AsMemory(0, Chunk), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    length += n;
                    if (length > maxBytes)
                    {
                        return null; // the writer is disposed uncommitted: nothing is left
                    }

                    hash.AppendData(chunk, 0, n);
                    await writer.WriteAsync(chunk.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(chunk);
            }

            await writer.CommitAsync(cancellationToken).ConfigureAwait(false);
            var kept = (int)Math.Min(head.Length, Math.Max(MinHead, Math.Min(options.Value.InlineThreshold + 1, Array.MaxLength)));
            return new StagedInput(null, name, length, hash.GetHashAndReset(), head[..kept].ToArray());
        }
    }

    [LoggerMessage(EventId = 320, Level = LogLevel.Warning, Message = "Staged input {Blob} not deleted (the blob sweep will): {Reason}")]
    private static partial void LogDiscardFailed(ILogger logger, string blob, string reason);
}
