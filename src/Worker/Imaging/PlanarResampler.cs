using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Async.Serving.Models;
using SkiaSharp;

namespace Async.Serving.Worker.Imaging;

/// <summary>
/// Resizes decoded pixels straight into a model's planar input: EXIF orientation, the centre crop
/// (or stretch), an antialiased resize and the normalisation in one pass over the decoded pixels,
/// with no intermediate bitmap. The resize is separable with a triangle filter whose width grows
/// with the reduction (bilinear when enlarging), which averages a large reduction like the linear
/// filtering over mipmaps it replaces. First along the stored rows (each output column of one row
/// is a weighted sum of a few RGBA pixels, four channels at once in one SIMD register), then along
/// the columns (each output row is a weighted sum of a few of those rows:
/// <see cref="TensorPrimitives.MultiplyAdd(ReadOnlySpan{float}, float, ReadOnlySpan{float}, Span{float})"/>).
/// Orientation only decides which stored axis feeds which output axis and in which direction.
/// </summary>
internal static class PlanarResampler
{
    /// <summary>
    /// Fills <paramref name="destination"/> (3 × height × width of <paramref name="config"/>) from
    /// <paramref name="pixels"/>: <paramref name="width"/> × <paramref name="height"/> stored pixels of
    /// <paramref name="bytesPerPixel"/> bytes (4: RGBA8888, premultiplied, so a transparent pixel counts
    /// as black; 3: RGB24), rows packed, shown with <paramref name="origin"/>.
    /// </summary>
    public static void Resample(
        ReadOnlySpan<byte> pixels, int width, int height, int bytesPerPixel, SKEncodedOrigin origin,
        PreprocessingConfig config, Span<float> destination)
    {
        var (outWidth, outHeight) = (config.Width, config.Height);
        if (bytesPerPixel is not (3 or 4) || pixels.Length < width * height * bytesPerPixel)
        {
            throw new ArgumentException($"Expected {width}×{height} pixels of 3 or 4 bytes.", nameof(pixels));
        }

        var swap = origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        var (shownWidth, shownHeight) = swap ? (height, width) : (width, height);
        float cropX = 0, cropY = 0, cropWidth = shownWidth, cropHeight = shownHeight;
        if (config.Resize != "stretch")
        {
            var scale = Math.Max((float)outWidth / shownWidth, (float)outHeight / shownHeight);
            (cropWidth, cropHeight) = (outWidth / scale, outHeight / scale);
            (cropX, cropY) = ((shownWidth - cropWidth) / 2, (shownHeight - cropHeight) / 2);
        }

        // The shown x axis runs along stored x (or stored y when the orientation turns the picture a
        // quarter), backwards when the picture is mirrored that way; likewise the shown y axis.
        var flipX = origin is SKEncodedOrigin.TopRight or SKEncodedOrigin.BottomRight or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom;
        var flipY = origin is SKEncodedOrigin.BottomRight or SKEncodedOrigin.BottomLeft or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        var xAxis = new AxisFilter(outWidth, cropX, cropWidth, swap ? height : width, flipX);
        var yAxis = new AxisFilter(outHeight, cropY, cropHeight, swap ? width : height, flipY);
        // Along the stored rows, then down the stored columns.
        var (alongRows, downColumns) = swap ? (yAxis, xAxis) : (xAxis, yAxis);
        var (firstRow, lastRow) = downColumns.Range();

        var rowFloats = 4 * alongRows.Count;
        var rows = lastRow - firstRow + 1;
        var reduced = ArrayPool<float>.Shared.Rent(rows * rowFloats);
        var line = ArrayPool<float>.Shared.Rent(rowFloats);
        try
        {
            var stride = width * bytesPerPixel;
            for (var r = 0; r < rows; r++)
            {
                FilterRow(pixels.Slice((firstRow + r) * stride, stride), bytesPerPixel, alongRows, reduced.AsSpan(r * rowFloats, rowFloats));
            }

            var lineSpan = line.AsSpan(0, rowFloats);
            var plane = outWidth * outHeight;
            var (mul, add) = Normalisation(config);
            var bgr = config.ChannelOrder == "bgr";
            for (var o = 0; o < downColumns.Count; o++)
            {
                var taps = downColumns.Taps(o, out var indices);
                TensorPrimitives.Multiply(reduced.AsSpan((indices[0] - firstRow) * rowFloats, rowFloats), taps[0], lineSpan);
                for (var t = 1; t < taps.Length; t++)
                {
                    TensorPrimitives.MultiplyAdd(reduced.AsSpan((indices[t] - firstRow) * rowFloats, rowFloats), taps[t], lineSpan, lineSpan);
                }

                // Output pixel (x, y) of this line: along a shown row when not turned, down a shown column when turned.
                var (start, step) = swap ? (o, outWidth) : (o * outWidth, 1);
                WriteLine(lineSpan, destination, start, step, plane, mul, add, bgr);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(reduced);
            ArrayPool<float>.Shared.Return(line);
        }
    }

    /// <summary>(pixel × scale − mean) / std as one multiply-add per channel, in the output's plane order.</summary>
    private static (Vector128<float> Mul, Vector128<float> Add) Normalisation(PreprocessingConfig config)
    {
        Span<float> mul = stackalloc float[4];
        Span<float> add = stackalloc float[4];
        for (var c = 0; c < 3; c++)
        {
            mul[c] = config.Scale / config.Std[c];
            add[c] = -config.Mean[c] / config.Std[c];
        }

        return (Vector128.Create<float>(mul), Vector128.Create<float>(add));
    }

    private static void FilterRow(ReadOnlySpan<byte> row, int bytesPerPixel, AxisFilter filter, Span<float> output)
    {
        ref var source = ref MemoryMarshal.GetReference(row);
        var four = bytesPerPixel == 4;
        var last = row.Length / bytesPerPixel - 1;
        for (var o = 0; o < filter.Count; o++)
        {
            var taps = filter.Taps(o, out var indices);
            var sum = Vector128<float>.Zero;
            for (var t = 0; t < taps.Length; t++)
            {
                var at = indices[t] * bytesPerPixel;
                var pixel = four || indices[t] < last
                    ? Widen(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref source, at)))
                    : Vector128.Create(row[at], row[at + 1], row[at + 2], 0f);
                sum = Vector128.MultiplyAddEstimate(pixel, Vector128.Create(taps[t]), sum);
            }

            sum.StoreUnsafe(ref MemoryMarshal.GetReference(output), (nuint)(4 * o));
        }
    }

    /// <summary>Four bytes (R, G, B, A or the next pixel's R) as four floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Widen(uint packed) =>
        Vector128.ConvertToSingle(Vector128.WidenLower(Vector128.WidenLower(Vector128.CreateScalarUnsafe(packed).AsByte())).AsInt32());

    private static void WriteLine(ReadOnlySpan<float> line, Span<float> destination, int start, int step, int plane, Vector128<float> mul, Vector128<float> add, bool bgr)
    {
        var first = destination[..plane];
        var second = destination.Slice(plane, plane);
        var third = destination.Slice(2 * plane, plane);
        ref var source = ref MemoryMarshal.GetReference(line);
        var count = line.Length / 4;
        for (int i = 0, at = start; i < count; i++, at += step)
        {
            var value = Vector128.MultiplyAddEstimate(Vector128.LoadUnsafe(ref source, (nuint)(4 * i)), mul, add);
            first[at] = bgr ? value.GetElement(2) : value.GetElement(0);
            second[at] = value.GetElement(1);
            third[at] = bgr ? value.GetElement(0) : value.GetElement(2);
        }
    }

    /// <summary>
    /// The weights of one axis: output i looks at the crop's point c + (i + ½)·l/n, mapped into stored
    /// pixels (mirrored when <c>flip</c>), through a triangle of half-width max(1, l/n) source pixels;
    /// taps outside the crop are clamped to its edge. Every output has the same number of taps,
    /// a zero weight padding the short ones.
    /// </summary>
    private sealed class AxisFilter
    {
        private readonly int[] _indices;
        private readonly float[] _weights;
        private readonly int _taps;

        public AxisFilter(int count, float cropStart, float cropLength, int length, bool flip)
        {
            Count = count;
            var ratio = cropLength / count;
            var support = Math.Max(1f, ratio);
            // Taps stay inside the crop (its edge pixels repeat), as a drawn source rectangle does: what
            // lies outside the crop does not bleed into the picture the model sees.
            var low = flip ? length - cropStart - cropLength : cropStart;
            var (lowest, highest) = (Math.Max(0, (int)Math.Floor(low)), Math.Min(length - 1, (int)Math.Ceiling(low + cropLength) - 1));
            highest = Math.Max(lowest, highest);
            var reach = (int)Math.Ceiling(2 * support) + 2;
            var firsts = new int[count];
            var weights = new float[count * reach];
            for (var i = 0; i < count; i++)
            {
                var shown = cropStart + ((i + 0.5f) * ratio);
                var centre = flip ? length - shown : shown;
                firsts[i] = (int)Math.Floor(centre - support - 0.5f);
                var total = 0f;
                for (var t = 0; t < reach; t++)
                {
                    var weight = Math.Max(0f, 1f - (Math.Abs(firsts[i] + t + 0.5f - centre) / support));
                    weights[(i * reach) + t] = weight;
                    total += weight;
                }

                for (var t = 0; t < reach; t++)
                {
                    weights[(i * reach) + t] /= total;
                }
            }

            // Only the taps that weigh anything: the most any output has, the short ones padded with zeros.
            _taps = 0;
            for (var i = 0; i < count; i++)
            {
                var row = weights.AsSpan(i * reach, reach);
                _taps = Math.Max(_taps, row.LastIndexOfAnyExcept(0f) - row.IndexOfAnyExcept(0f) + 1);
            }

            _indices = new int[count * _taps];
            _weights = new float[count * _taps];
            for (var i = 0; i < count; i++)
            {
                var from = weights.AsSpan(i * reach, reach).IndexOfAnyExcept(0f);
                for (var t = 0; t < _taps; t++)
                {
                    var k = from + t;
                    _indices[(i * _taps) + t] = Math.Clamp(firsts[i] + k, lowest, highest);
                    _weights[(i * _taps) + t] = k < reach ? weights[(i * reach) + k] : 0f;
                }
            }
        }

        public int Count { get; }

        public ReadOnlySpan<float> Taps(int output, out ReadOnlySpan<int> indices)
        {
            indices = _indices.AsSpan(output * _taps, _taps);
            return _weights.AsSpan(output * _taps, _taps);
        }

        /// <summary>The first and last stored index any output reads.</summary>
        public (int First, int Last) Range() => (_indices.Min(), _indices.Max());
    }
}
