using System.Drawing;

namespace Async.Serving.Worker.Ocr;

/// <summary>
/// Orders text boxes as a page is read: rows top to bottom, then left to right within a row. A box
/// joins a row when its vertical centre lies within half a line height of the row's centre line,
/// followed along the row's slope (so the pieces of one tilted line, split at wide spaces, stay one row).
/// </summary>
internal static class ReadingOrder
{
    /// <summary>Indexes of <paramref name="quads"/> (clockwise from top-left) in reading order.</summary>
    public static int[] Order(IReadOnlyList<PointF[]> quads)
    {
        var items = new Item[quads.Count];
        for (var i = 0; i < quads.Count; i++)
        {
            var q = quads[i];
            var centerX = (q[0].X + q[1].X + q[2].X + q[3].X) / 4;
            var centerY = (q[0].Y + q[1].Y + q[2].Y + q[3].Y) / 4;
            // The line's own height (left and right edges), not its bounding box: a tilted line stays one line high.
            var height = (Geometry.Distance(q[0], q[3]) + Geometry.Distance(q[1], q[2])) / 2;
            var left = Math.Min(Math.Min(q[0].X, q[1].X), Math.Min(q[2].X, q[3].X));
            var run = (q[1].X - q[0].X + q[2].X - q[3].X) / 2;
            var rise = (q[1].Y - q[0].Y + q[2].Y - q[3].Y) / 2;
            // Slopes steeper than 1:2 say little about where a row continues; such boxes are taken as level.
            var slope = Math.Abs(run) > 1e-3f && Math.Abs(rise / run) <= 0.5f ? rise / run : 0f;
            items[i] = new Item(i, centerX, centerY, height, left, slope);
        }

        Array.Sort(items, (a, b) => a.CenterY != b.CenterY ? a.CenterY.CompareTo(b.CenterY) : a.Left.CompareTo(b.Left));
        var rows = new List<List<Item>>();
        foreach (var item in items)
        {
            // Rows are created top to bottom; the most recent ones are the likeliest to continue.
            List<Item>? home = null;
            for (var r = rows.Count - 1; r >= 0 && home is null; r--)
            {
                var first = rows[r][0];
                var expectedY = first.CenterY + (first.Slope * (item.CenterX - first.CenterX));
                var height = rows[r].Average(m => m.Height);
                if (Math.Abs(item.CenterY - expectedY) <= (height + item.Height) / 4)
                {
                    home = rows[r];
                }
            }

            if (home is null)
            {
                rows.Add([item]);
            }
            else
            {
                home.Add(item);
            }
        }

        return [.. rows.SelectMany(row => row.OrderBy(m => m.Left).Select(m => m.Index))];
    }

    private readonly record struct Item(int Index, float CenterX, float CenterY, float Height, float Left, float Slope);
}
