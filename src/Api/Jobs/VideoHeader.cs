using System.Buffers.Binary;

namespace Async.Serving.Api.Jobs;

/// <summary>
/// The duration a video container declares in its header, read without decoding anything, so a
/// video longer than its model takes is refused at submit instead of failing in a worker. Read for
/// ISO BMFF / QuickTime (the movie header <c>mvhd</c>, wherever <c>moov</c> sits) and for
/// Matroska / WebM (<c>Segment/Info/Duration</c> times <c>TimecodeScale</c>). Other containers,
/// and files that declare no duration (fragmented MP4, a live WebM), give <c>null</c>: the worker
/// still checks every video with ffprobe.
/// </summary>
public static class VideoHeader
{
    public static double? ReadDurationSeconds(ReadOnlySpan<byte> data)
    {
        try
        {
            var seconds = data switch
            {
                [0x1A, 0x45, 0xDF, 0xA3, ..] => MatroskaDuration(data),
                [_, _, _, _, ..] when data.Length >= 8 && IsBoxType(data[4..8]) => MovieHeaderDuration(data),
                _ => null,
            };
            return seconds is { } s && double.IsFinite(s) && s > 0 ? s : null;
        }
        catch (ArgumentOutOfRangeException)
        {
            return null; // a size field pointing past the end: a truncated or damaged header
        }
    }

    /// <summary>Longest <c>moov</c> box read from a stream (a long video's index runs to a few MiB).</summary>
    private const int MaxMovieBoxBytes = 64 * 1024 * 1024;

    /// <summary>
    /// The same, from a seekable stream (a video in the blob store), reading only what the header
    /// needs: the first MiB for Matroska, the top-level box headers and the <c>moov</c> box for ISO
    /// BMFF, wherever it sits. Null for a stream that cannot seek.
    /// </summary>
    public static async Task<double?> ReadDurationSecondsAsync(Stream stream, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek)
        {
            return null;
        }

        var length = stream.Length;
        var head = new byte[(int)Math.Min(length, 1024 * 1024)];
        stream.Position = 0;
        await stream.ReadExactlyAsync(head, cancellationToken).ConfigureAwait(false);
        if (head is not [_, _, _, _, _, _, _, _, ..] || head[0] == 0x1A || !IsBoxType(head.AsSpan(4, 4)))
        {
            return ReadDurationSeconds(head);
        }

        var header = new byte[16];
        var offset = 0L;
        for (var boxes = 0; offset + 8 <= length && boxes < 10_000; boxes++)
        {
            stream.Position = offset;
            var got = await stream.ReadAtLeastAsync(header, 8, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            long size = BinaryPrimitives.ReadUInt32BigEndian(header);
            if (size == 1 && got >= 16)
            {
                size = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8)), long.MaxValue);
            }
            else if (size == 0)
            {
                size = length - offset;
            }

            if (size < 8)
            {
                return null;
            }

            if (header.AsSpan(4, 4).SequenceEqual("moov"u8))
            {
                if (size > MaxMovieBoxBytes || offset + size > length)
                {
                    return null;
                }

                var moov = new byte[size];
                stream.Position = offset;
                await stream.ReadExactlyAsync(moov, cancellationToken).ConfigureAwait(false);
                return ReadDurationSeconds(moov);
            }

            offset += size;
        }

        return null;
    }

    private static bool IsBoxType(ReadOnlySpan<byte> type)
    {
        foreach (var b in type)
        {
            if (b is < 0x20 or > 0x7E)
            {
                return false;
            }
        }

        return true;
    }

    // ISO BMFF: boxes of [u32 size][4-char type] (size 1: a u64 size follows; size 0: to the end).
    private static double? MovieHeaderDuration(ReadOnlySpan<byte> data)
    {
        var moov = FindBox(data, "moov"u8);
        var mvhd = moov.IsEmpty ? default : FindBox(moov, "mvhd"u8);
        if (mvhd.Length < 20)
        {
            return null;
        }

        // Version 0: creation, modification (u32 each), timescale (u32), duration (u32); version 1: u64 times and duration.
        var (timescale, duration, unknown) = mvhd[0] == 1 && mvhd.Length >= 32
            ? (BinaryPrimitives.ReadUInt32BigEndian(mvhd[20..]), BinaryPrimitives.ReadUInt64BigEndian(mvhd[24..]), ulong.MaxValue)
            : (BinaryPrimitives.ReadUInt32BigEndian(mvhd[12..]), BinaryPrimitives.ReadUInt32BigEndian(mvhd[16..]), uint.MaxValue);
        return timescale == 0 || duration == 0 || duration == unknown ? null : (double)duration / timescale;
    }

    /// <summary>The payload of the first box of <paramref name="type"/> among the boxes that fill <paramref name="data"/>.</summary>
    private static ReadOnlySpan<byte> FindBox(ReadOnlySpan<byte> data, ReadOnlySpan<byte> type)
    {
        var offset = 0L;
        while (offset + 8 <= data.Length)
        {
            var box = data[(int)offset..];
            long size = BinaryPrimitives.ReadUInt32BigEndian(box);
            var header = 8;
            if (size == 1)
            {
                if (box.Length < 16)
                {
                    return default;
                }

                size = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(box[8..]), long.MaxValue);
                header = 16;
            }
            else if (size == 0)
            {
                size = box.Length;
            }

            if (size < header)
            {
                return default;
            }

            if (box[4..8].SequenceEqual(type))
            {
                return box[header..(int)Math.Min(size, box.Length)];
            }

            offset += size;
        }

        return default;
    }

    // EBML: elements of [ID: 1–4 bytes, marker kept][size: 1–8 bytes, marker dropped; all ones is unknown].
    private const uint SegmentId = 0x18538067;
    private const uint InfoId = 0x1549A966;
    private const uint ClusterId = 0x1F43B675;
    private const uint TimecodeScaleId = 0x2AD7B1;
    private const uint DurationId = 0x4489;

    private static double? MatroskaDuration(ReadOnlySpan<byte> data)
    {
        var segment = FindElement(data, SegmentId, stopAt: 0);
        var info = segment.IsEmpty ? default : FindElement(segment, InfoId, stopAt: ClusterId);
        if (info.IsEmpty)
        {
            return null;
        }

        var scale = FindElement(info, TimecodeScaleId, stopAt: 0) is { Length: > 0 and <= 8 } s ? ReadUnsigned(s) : 1_000_000UL;
        double? duration = FindElement(info, DurationId, stopAt: 0) switch
        {
            { Length: 4 } d => BinaryPrimitives.ReadSingleBigEndian(d),
            { Length: 8 } d => BinaryPrimitives.ReadDoubleBigEndian(d),
            _ => null,
        };
        return duration is > 0 and < double.MaxValue && scale > 0 ? duration.Value * scale / 1e9 : null;
    }

    /// <summary>The payload of the first element <paramref name="id"/> among the elements that fill <paramref name="data"/>; an element of unknown size runs to the end.</summary>
    private static ReadOnlySpan<byte> FindElement(ReadOnlySpan<byte> data, uint id, uint stopAt)
    {
        var offset = 0;
        while (offset < data.Length)
        {
            var element = data[offset..];
            if (!TryReadVint(element, keepMarker: true, out var elementId, out var idLength) || idLength > 4
                || !TryReadVint(element[idLength..], keepMarker: false, out var size, out var sizeLength))
            {
                return default;
            }

            if (elementId == stopAt)
            {
                return default;
            }

            var header = idLength + sizeLength;
            var unknown = size == (1UL << (7 * sizeLength)) - 1;
            var length = unknown ? element.Length - header : (int)Math.Min(size, (ulong)(element.Length - header));
            if (elementId == id)
            {
                return element.Slice(header, length);
            }

            if (unknown)
            {
                return default;
            }

            if (size > (ulong)(element.Length - header))
            {
                return default;
            }

            offset += header + (int)size;
        }

        return default;
    }

    private static bool TryReadVint(ReadOnlySpan<byte> data, bool keepMarker, out ulong value, out int length)
    {
        value = 0;
        length = data.IsEmpty || data[0] == 0 ? 0 : System.Numerics.BitOperations.LeadingZeroCount((uint)data[0]) - 23;
        if (length is 0 or > 8 || data.Length < length)
        {
            return false;
        }

        value = keepMarker ? data[0] : (ulong)(data[0] & (0xFF >> length));
        for (var i = 1; i < length; i++)
        {
            value = (value << 8) | data[i];
        }

        return true;
    }

    private static ulong ReadUnsigned(ReadOnlySpan<byte> data)
    {
        var value = 0UL;
        foreach (var b in data)
        {
            value = (value << 8) | b;
        }

        return value;
    }
}
