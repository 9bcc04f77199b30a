using System.Drawing;
using System.Numerics;

namespace Async.Serving.Worker.Ocr;

/// <summary>A rectangle at any angle: its centre, the unit direction of its width, and its two side lengths.</summary>
internal readonly record struct RotatedRect(Vector2 Center, Vector2 Axis, float Width, float Height)
{
    public float Area => Width * Height;

    public float Perimeter => 2 * (Width + Height);

    public float ShortSide => Math.Min(Width, Height);

    /// <summary>The same rectangle grown by <paramref name="distance"/> on every side.</summary>
    public RotatedRect Grow(float distance) => this with { Width = Width + (2 * distance), Height = Height + (2 * distance) };

    /// <summary>The four corners, in no particular order (see <see cref="Geometry.OrderClockwise"/>).</summary>
    public Vector2[] Corners()
    {
        var u = Axis * (Width / 2);
        var v = new Vector2(-Axis.Y, Axis.X) * (Height / 2);
        return [Center - u - v, Center + u - v, Center + u + v, Center - u + v];
    }
}

/// <summary>Plane geometry for the text detector's post-processing and crop rectification.</summary>
internal static class Geometry
{
    /// <summary>Convex hull (Andrew's monotone chain), counter-clockwise in a y-up frame, without collinear points.</summary>
    public static List<Vector2> ConvexHull(IReadOnlyList<Vector2> points)
    {
        var sorted = points.Distinct().OrderBy(p => p.X).ThenBy(p => p.Y).ToArray();
        if (sorted.Length < 3)
        {
            return [.. sorted];
        }

        var hull = new Vector2[2 * sorted.Length];
        var k = 0;
        foreach (var p in sorted)
        {
            while (k >= 2 && Cross(hull[k - 2], hull[k - 1], p) <= 0)
            {
                k--;
            }

            hull[k++] = p;
        }

        for (int i = sorted.Length - 2, lower = k + 1; i >= 0; i--)
        {
            var p = sorted[i];
            while (k >= lower && Cross(hull[k - 2], hull[k - 1], p) <= 0)
            {
                k--;
            }

            hull[k++] = p;
        }

        return [.. hull.AsSpan(0, k - 1)];
    }

    /// <summary>
    /// The minimum-area rectangle around a convex hull (rotating calipers: the best rectangle has
    /// one side on a hull edge, so each edge direction is tried). Degenerate hulls (a point, a
    /// segment) give a rectangle of zero height.
    /// </summary>
    public static RotatedRect MinAreaRect(IReadOnlyList<Vector2> hull)
    {
        if (hull.Count == 0)
        {
            return new RotatedRect(Vector2.Zero, Vector2.UnitX, 0, 0);
        }

        if (hull.Count == 1)
        {
            return new RotatedRect(hull[0], Vector2.UnitX, 0, 0);
        }

        var best = default(RotatedRect);
        var bestArea = float.PositiveInfinity;
        for (var i = 0; i < hull.Count; i++)
        {
            var edge = hull[(i + 1) % hull.Count] - hull[i];
            var length = edge.Length();
            if (length < 1e-6f)
            {
                continue;
            }

            var u = edge / length;
            var v = new Vector2(-u.Y, u.X);
            float minU = float.PositiveInfinity, maxU = float.NegativeInfinity, minV = float.PositiveInfinity, maxV = float.NegativeInfinity;
            foreach (var p in hull)
            {
                var pu = Vector2.Dot(p, u);
                var pv = Vector2.Dot(p, v);
                minU = Math.Min(minU, pu);
                maxU = Math.Max(maxU, pu);
                minV = Math.Min(minV, pv);
                maxV = Math.Max(maxV, pv);
            }

            var area = (maxU - minU) * (maxV - minV);
            if (area < bestArea - 1e-3f)
            {
                bestArea = area;
                var center = (u * ((minU + maxU) / 2)) + (v * ((minV + maxV) / 2));
                best = new RotatedRect(center, u, maxU - minU, maxV - minV);
            }
        }

        return best;
    }

    /// <summary>
    /// Orders a quadrilateral's corners clockwise on screen (y down), starting at the top-left:
    /// the upper of the two leftmost corners.
    /// </summary>
    public static PointF[] OrderClockwise(ReadOnlySpan<PointF> quad)
    {
        if (quad.Length != 4)
        {
            throw new ArgumentException("A quadrilateral has four corners.", nameof(quad));
        }

        float cx = 0, cy = 0;
        foreach (var p in quad)
        {
            cx += p.X / 4;
            cy += p.Y / 4;
        }

        var byAngle = quad.ToArray();
        Array.Sort(byAngle, (a, b) => MathF.Atan2(a.Y - cy, a.X - cx).CompareTo(MathF.Atan2(b.Y - cy, b.X - cx)));
        var leftmost = quad.ToArray();
        Array.Sort(leftmost, (a, b) => a.X != b.X ? a.X.CompareTo(b.X) : a.Y.CompareTo(b.Y));
        var topLeft = leftmost[0].Y <= leftmost[1].Y ? leftmost[0] : leftmost[1];
        var start = Array.IndexOf(byAngle, topLeft);
        return [byAngle[start], byAngle[(start + 1) % 4], byAngle[(start + 2) % 4], byAngle[(start + 3) % 4]];
    }

    /// <summary>Whether <paramref name="p"/> lies inside (or on) a convex polygon given in either winding.</summary>
    public static bool InsideConvex(ReadOnlySpan<Vector2> polygon, Vector2 p)
    {
        var sign = 0;
        for (var i = 0; i < polygon.Length; i++)
        {
            var cross = Cross(polygon[i], polygon[(i + 1) % polygon.Length], p);
            var s = cross > 1e-6f ? 1 : cross < -1e-6f ? -1 : 0;
            if (s == 0)
            {
                continue;
            }

            if (sign == 0)
            {
                sign = s;
            }
            else if (s != sign)
            {
                return false;
            }
        }

        return true;
    }

    public static float Distance(PointF a, PointF b) => MathF.Sqrt(((a.X - b.X) * (a.X - b.X)) + ((a.Y - b.Y) * (a.Y - b.Y)));

    private static float Cross(Vector2 o, Vector2 a, Vector2 b) => ((a.X - o.X) * (b.Y - o.Y)) - ((a.Y - o.Y) * (b.X - o.X));
}
