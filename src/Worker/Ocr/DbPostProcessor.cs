using System.Drawing;
using System.Numerics;
using Async.Serving.Models;

namespace Async.Serving.Worker.Ocr;

/// <summary>
/// Turns the DB detector's probability map into text boxes, as PaddleOCR's DBPostProcess does but
/// with connected components (8-connectivity) in place of contours: binarise, per component the
/// convex hull and its minimum-area rectangle, score (the component's mean probability, as
/// PaddleOCR's <c>score_mode: slow</c> scores its contour: a curved line's rectangle holds much
/// background), unclip (DB learns shrunken regions), and map back to the original image. Map pixel (x, y) covers the square [x, x+1) × [y, y+1).
/// </summary>
internal static class DbPostProcessor
{
    /// <summary>At most this many components are considered (in scan order), as PaddleOCR's <c>max_candidates</c>.</summary>
    public const int MaxComponents = 1000;

    /// <summary>
    /// A component that covers less than this share of its rectangle (a curved or bowed line) is
    /// unclipped by its own area and outline when that grows it less than its rectangle's would.
    /// </summary>
    public const float FillRatio = 0.75f;

    /// <summary>
    /// Boxes found in <paramref name="map"/> (<paramref name="mapWidth"/>×<paramref name="mapHeight"/>,
    /// row-major probabilities), in the coordinates of an image of <paramref name="imageWidth"/>×<paramref name="imageHeight"/>
    /// that was resized to the map's size for detection. A box's score is the mean probability inside
    /// its rectangle, or over its component when <paramref name="scoreComponent"/> is set (what
    /// <see cref="OcrModel"/> uses: a curved line's rectangle is mostly background).
    /// </summary>
    public static List<TextBox> Extract(
        ReadOnlySpan<float> map, int mapWidth, int mapHeight, int imageWidth, int imageHeight, OcrConfig config, bool scoreComponent = false)
    {
        if (map.Length < mapWidth * mapHeight)
        {
            throw new ArgumentException($"The map holds {map.Length} values, not {mapWidth}×{mapHeight}.", nameof(map));
        }

        var boxes = new List<TextBox>();
        var visited = new bool[mapWidth * mapHeight];
        var rowMin = new int[mapHeight];
        var rowMax = new int[mapHeight];
        var stack = new Stack<int>();
        var hullPoints = new List<Vector2>();
        var scaleX = (float)imageWidth / mapWidth;
        var scaleY = (float)imageHeight / mapHeight;
        var threshold = config.DetThreshold;
        var components = 0;

        for (var start = 0; start < mapWidth * mapHeight && components < MaxComponents; start++)
        {
            if (visited[start] || !(map[start] > threshold))
            {
                continue;
            }

            components++;
            var (top, bottom, sum, count, edge) = Fill(map, mapWidth, mapHeight, threshold, start, visited, stack, rowMin, rowMax);

            // The hull of the component's pixel squares: each row contributes the outer corners of its ends.
            hullPoints.Clear();
            for (var y = top; y <= bottom; y++)
            {
                hullPoints.Add(new Vector2(rowMin[y], y));
                hullPoints.Add(new Vector2(rowMin[y], y + 1));
                hullPoints.Add(new Vector2(rowMax[y] + 1, y));
                hullPoints.Add(new Vector2(rowMax[y] + 1, y + 1));
            }

            var rect = Geometry.MinAreaRect(Geometry.ConvexHull(hullPoints));
            if (rect.ShortSide < config.MinBoxSide)
            {
                continue;
            }

            var score = scoreComponent ? (float)(sum / count) : MeanInside(map, mapWidth, mapHeight, rect.Corners()) ?? (float)(sum / count);
            if (score < config.BoxThreshold)
            {
                continue;
            }

            // Unclip by the rectangle's area over its perimeter (PaddleOCR's). A curved line fills
            // little of its rectangle, and growing by the rectangle's measures would take in the lines
            // above and below: it is grown by its own (pixel count over the count of its pixels on
            // its edge) when that is less.
            var distance = rect.Area / rect.Perimeter;
            if (count < FillRatio * rect.Area)
            {
                distance = Math.Min(distance, (float)count / Math.Max(edge, 1));
            }

            var grown = rect.Grow(distance * config.UnclipRatio);
            if (grown.ShortSide < config.MinBoxSide + 2)
            {
                continue;
            }

            var corners = grown.Corners();
            var quad = new PointF[4];
            for (var i = 0; i < 4; i++)
            {
                quad[i] = new PointF(
                    Math.Clamp(corners[i].X * scaleX, 0, imageWidth - 1),
                    Math.Clamp(corners[i].Y * scaleY, 0, imageHeight - 1));
            }

            boxes.Add(new TextBox(Geometry.OrderClockwise(quad), score));
        }

        return boxes;
    }

    /// <summary>
    /// Flood-fills the component at <paramref name="start"/>; leaves each row's extent in
    /// rowMin/rowMax. <c>Edge</c> counts its pixels with a 4-neighbour outside it (or outside the map).
    /// </summary>
    private static (int Top, int Bottom, double Sum, int Count, int Edge) Fill(
        ReadOnlySpan<float> map, int width, int height, float threshold, int start, bool[] visited, Stack<int> stack, int[] rowMin, int[] rowMax)
    {
        var top = start / width;
        var bottom = top;
        rowMin[top] = rowMax[top] = start % width;
        double sum = 0;
        var count = 0;
        var edge = 0;
        visited[start] = true;
        stack.Push(start);
        while (stack.TryPop(out var index))
        {
            var x = index % width;
            var y = index / width;
            sum += map[index];
            count++;
            if (x == 0 || y == 0 || x == width - 1 || y == height - 1
                || !(map[index - 1] > threshold) || !(map[index + 1] > threshold) || !(map[index - width] > threshold) || !(map[index + width] > threshold))
            {
                edge++;
            }

            if (y < top || y > bottom)
            {
                // A connected component's rows are contiguous: a new row extends the range by one.
                rowMin[y] = rowMax[y] = x;
                top = Math.Min(top, y);
                bottom = Math.Max(bottom, y);
            }
            else
            {
                rowMin[y] = Math.Min(rowMin[y], x);
                rowMax[y] = Math.Max(rowMax[y], x);
            }

            for (var dy = -1; dy <= 1; dy++)
            {
                var ny = y + dy;
                if ((uint)ny >= (uint)height)
                {
                    continue;
                }

                for (var dx = -1; dx <= 1; dx++)
                {
                    var nx = x + dx;
                    if ((uint)nx >= (uint)width)
                    {
                        continue;
                    }

                    var n = (ny * width) + nx;
                    if (!visited[n] && map[n] > threshold)
                    {
                        visited[n] = true;
                        stack.Push(n);
                    }
                }
            }
        }

        return (top, bottom, sum, count, edge);
    }

    /// <summary>Mean of the map over the pixels whose centres lie inside a convex quadrilateral; null when none do.</summary>
    private static float? MeanInside(ReadOnlySpan<float> map, int width, int height, ReadOnlySpan<Vector2> quad)
    {
        float minX = float.PositiveInfinity, minY = float.PositiveInfinity, maxX = float.NegativeInfinity, maxY = float.NegativeInfinity;
        foreach (var p in quad)
        {
            minX = Math.Min(minX, p.X);
            minY = Math.Min(minY, p.Y);
            maxX = Math.Max(maxX, p.X);
            maxY = Math.Max(maxY, p.Y);
        }

        var x0 = Math.Max(0, (int)MathF.Floor(minX));
        var x1 = Math.Min(width - 1, (int)MathF.Ceiling(maxX));
        var y0 = Math.Max(0, (int)MathF.Floor(minY));
        var y1 = Math.Min(height - 1, (int)MathF.Ceiling(maxY));
        double sum = 0;
        var count = 0;
        for (var y = y0; y <= y1; y++)
        {
            for (var x = x0; x <= x1; x++)
            {
                if (Geometry.InsideConvex(quad, new Vector2(x + 0.5f, y + 0.5f)))
                {
                    sum += map[(y * width) + x];
                    count++;
                }
            }
        }

        return count == 0 ? null : (float)(sum / count);
    }
}
