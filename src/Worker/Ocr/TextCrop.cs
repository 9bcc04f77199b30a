using System.Drawing;
using Async.Serving.Worker.Imaging;
using SkiaSharp;

namespace Async.Serving.Worker.Ocr;

/// <summary>
/// Cuts a text line out of an image along its quadrilateral and prepares it for the classifier and
/// the recogniser: a perspective-rectified crop at native resolution (turned 90° when the line is
/// vertical), scaled to the networks' height with mipmapped filtering, written as normalised planes.
/// </summary>
internal static class TextCrop
{
    /// <summary>Height of the classifier's and the recogniser's input.</summary>
    public const int Height = 48;

    /// <summary>A crop at least this many times taller than wide holds a vertical line and is turned 90°.</summary>
    public const float VerticalRatio = 1.5f;

    /// <summary>
    /// Background the recogniser sees above and below a line, as a fraction of the line's height.
    /// DB boxes (unclip ratio 1.5) hug the ink; cropped that tightly, PP-OCRv4's recogniser drops
    /// most spaces between English words (measured word accuracy on the test set: 39 % with no
    /// margin, 94 % with 0.2, 96 % with 0.3).
    /// </summary>
    public const float Margin = 0.25f;

    /// <summary>
    /// The quad <paramref name="quad"/> (top-left, top-right, bottom-right, bottom-left) of
    /// <paramref name="image"/> sampled bilinearly into an upright rectangle as wide as its longer
    /// horizontal edge and as tall as its longer vertical edge; turned 90° counter-clockwise when
    /// it is at least <see cref="VerticalRatio"/> times taller than wide. <paramref name="margin"/>
    /// (a fraction of the line's thickness) widens the crop across the line on both sides; beyond
    /// the image its edge pixels repeat.
    /// </summary>
    public static SKBitmap Rectify(RgbImage image, ReadOnlySpan<PointF> quad, float margin = 0)
    {
        var edgeWidth = Math.Max(Geometry.Distance(quad[0], quad[1]), Geometry.Distance(quad[3], quad[2]));
        var edgeHeight = Math.Max(Geometry.Distance(quad[0], quad[3]), Geometry.Distance(quad[1], quad[2]));
        var vertical = Math.Max(1, MathF.Round(edgeHeight)) >= VerticalRatio * Math.Max(1, MathF.Round(edgeWidth));
        if (margin > 0)
        {
            // Across the line: along the side edges for a horizontal line, along the top and bottom edges for a vertical one.
            quad = vertical
                ? (PointF[])[Extend(quad[0], quad[1], margin * edgeWidth), Extend(quad[1], quad[0], margin * edgeWidth), Extend(quad[2], quad[3], margin * edgeWidth), Extend(quad[3], quad[2], margin * edgeWidth)]
                : [Extend(quad[0], quad[3], margin * edgeHeight), Extend(quad[1], quad[2], margin * edgeHeight), Extend(quad[2], quad[1], margin * edgeHeight), Extend(quad[3], quad[0], margin * edgeHeight)];
            edgeWidth = Math.Max(Geometry.Distance(quad[0], quad[1]), Geometry.Distance(quad[3], quad[2]));
            edgeHeight = Math.Max(Geometry.Distance(quad[0], quad[3]), Geometry.Distance(quad[1], quad[2]));
        }

        var width = Math.Max(1, (int)MathF.Round(edgeWidth));
        var height = Math.Max(1, (int)MathF.Round(edgeHeight));
        var (outWidth, outHeight) = vertical ? (height, width) : (width, height);
        var h = Homography.SquareToQuad(quad);
        var bitmap = new SKBitmap(new SKImageInfo(outWidth, outHeight, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = bitmap.GetPixelSpan();
        for (var y = 0; y < outHeight; y++)
        {
            for (var x = 0; x < outWidth; x++)
            {
                // (s, t): where this output pixel's centre lies in the unit square of the upright crop.
                float s, t;
                if (vertical)
                {
                    // Counter-clockwise: output column x is crop row x; output row y is crop column (width − 1 − y).
                    s = (width - (y + 0.5f)) / width;
                    t = (x + 0.5f) / height;
                }
                else
                {
                    s = (x + 0.5f) / width;
                    t = (y + 0.5f) / height;
                }

                var (px, py) = h.Map(s, t);
                Sample(image, px - 0.5f, py - 0.5f, rgba.Slice(((y * outWidth) + x) * 4, 4));
            }
        }

        return bitmap;
    }

    /// <summary>
    /// Moves <paramref name="point"/> <paramref name="distance"/> further from <paramref name="away"/>, along the line through both.
    /// </summary>
    private static PointF Extend(PointF point, PointF away, float distance)
    {
        var length = Geometry.Distance(point, away);
        return length < 1e-3f
            ? point
            : new PointF(point.X + ((point.X - away.X) / length * distance), point.Y + ((point.Y - away.Y) / length * distance));
    }

    /// <summary>Width a crop of <paramref name="width"/>×<paramref name="height"/> takes at <see cref="Height"/> pixels high, at least 1.</summary>
    public static int ScaledWidth(int width, int height) => Math.Max(1, (int)Math.Ceiling((double)Height * width / height));

    /// <summary>
    /// Writes an RGBA bitmap <see cref="Height"/> pixels high into three planes of
    /// <paramref name="planeWidth"/> columns (B, G, R, as PaddleOCR's networks were trained on
    /// OpenCV images), each value (pixel/255 − 0.5)/0.5, left-aligned; columns past the bitmap are
    /// left as they are (the caller zeroes them: 0 is mid-grey). <paramref name="rotate180"/> turns the bitmap upside down.
    /// </summary>
    public static void WritePlanes(SKBitmap bitmap, Span<float> destination, int planeWidth, bool rotate180)
    {
        var width = Math.Min(bitmap.Width, planeWidth);
        var bitmapWidth = bitmap.Width;
        var plane = Height * planeWidth;
        ReadOnlySpan<byte> rgba = bitmap.GetPixelSpan();
        for (var y = 0; y < Height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var (sx, sy) = rotate180 ? (bitmapWidth - 1 - x, Height - 1 - y) : (x, y);
                var i = ((sy * bitmapWidth) + sx) * 4;
                var o = (y * planeWidth) + x;
                destination[o] = (rgba[i + 2] / 127.5f) - 1f;
                destination[plane + o] = (rgba[i + 1] / 127.5f) - 1f;
                destination[(2 * plane) + o] = (rgba[i] / 127.5f) - 1f;
            }
        }
    }

    /// <summary>Bilinear sample at pixel-centre coordinates (x, y), edges clamped, into one RGBA pixel.</summary>
    private static void Sample(RgbImage image, float x, float y, Span<byte> rgba)
    {
        var maxX = image.Width - 1;
        var maxY = image.Height - 1;
        x = Math.Clamp(x, 0, maxX);
        y = Math.Clamp(y, 0, maxY);
        var x0 = (int)x;
        var y0 = (int)y;
        var x1 = Math.Min(x0 + 1, maxX);
        var y1 = Math.Min(y0 + 1, maxY);
        var fx = x - x0;
        var fy = y - y0;
        var pixels = image.Pixels;
        var stride = image.Width * 3;
        var a = (y0 * stride) + (x0 * 3);
        var b = (y0 * stride) + (x1 * 3);
        var c = (y1 * stride) + (x0 * 3);
        var d = (y1 * stride) + (x1 * 3);
        for (var ch = 0; ch < 3; ch++)
        {
            var top = pixels[a + ch] + ((pixels[b + ch] - pixels[a + ch]) * fx);
            var bottom = pixels[c + ch] + ((pixels[d + ch] - pixels[c + ch]) * fx);
            rgba[ch] = (byte)Math.Clamp((int)MathF.Round(top + ((bottom - top) * fy)), 0, 255);
        }

        rgba[3] = 255;
    }

    /// <summary>The projective map of the unit square onto a quadrilateral (Heckbert's square-to-quad).</summary>
    private readonly record struct Homography(float A, float B, float C, float D, float E, float F, float G, float H)
    {
        public static Homography SquareToQuad(ReadOnlySpan<PointF> q)
        {
            // (0,0) → q[0], (1,0) → q[1], (1,1) → q[2], (0,1) → q[3].
            float x0 = q[0].X, y0 = q[0].Y, x1 = q[1].X, y1 = q[1].Y, x2 = q[2].X, y2 = q[2].Y, x3 = q[3].X, y3 = q[3].Y;
            var sx = x0 - x1 + x2 - x3;
            var sy = y0 - y1 + y2 - y3;
            var dx1 = x1 - x2;
            var dx2 = x3 - x2;
            var dy1 = y1 - y2;
            var dy2 = y3 - y2;
            var den = (dx1 * dy2) - (dx2 * dy1);
            if ((MathF.Abs(sx) < 1e-4f && MathF.Abs(sy) < 1e-4f) || MathF.Abs(den) < 1e-6f)
            {
                // A parallelogram (or a degenerate quad): affine.
                return new Homography(x1 - x0, x3 - x0, x0, y1 - y0, y3 - y0, y0, 0, 0);
            }

            var g = ((sx * dy2) - (dx2 * sy)) / den;
            var h = ((dx1 * sy) - (sx * dy1)) / den;
            return new Homography(x1 - x0 + (g * x1), x3 - x0 + (h * x3), x0, y1 - y0 + (g * y1), y3 - y0 + (h * y3), y0, g, h);
        }

        public (float X, float Y) Map(float s, float t)
        {
            var w = (G * s) + (H * t) + 1;
            return (((A * s) + (B * t) + C) / w, ((D * s) + (E * t) + F) / w);
        }
    }
}
