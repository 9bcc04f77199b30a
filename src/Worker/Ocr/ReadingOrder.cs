using System.Drawing;

namespace Async.Serving.Worker.Ocr;

/// <summary>
/// Orders text boxes as a page is read. Boxes are grouped into rows: a box joins a row when its
/// vertical centre lies within half a line height of the row's centre line, followed along the row's
/// slope (so the pieces of one tilted line, split at wide spaces, stay one row). Rows are read top to
/// bottom and each left to right, except where the page is set in columns: a run of rows that all
/// leave one vertical gutter free is read column by column, the left column to its end before the
/// right one (and so on for three columns). A gutter counts only between columns of prose: at least
/// three rows with text on both sides, and on each side rows whose longest box is typically wider
/// than <see cref="MinColumnWidth"/> line heights. A form's labels and values, or a table of
/// figures, stay row by row.
/// </summary>
internal static class ReadingOrder
{
    /// <summary>Narrowest gap between two columns, in line heights (word spaces are about a third of one).</summary>
    public const float MinGutter = 1.2f;

    /// <summary>Median width of the rows' longest boxes, in line heights, both sides of a gutter need to be read as columns (about 20 characters).</summary>
    public const float MinColumnWidth = 10f;

    /// <summary>Rows with text on both sides of a gutter needed to read it as columns.</summary>
    public const int MinColumnRows = 3;

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
            var right = Math.Max(Math.Max(q[0].X, q[1].X), Math.Max(q[2].X, q[3].X));
            var run = (q[1].X - q[0].X + q[2].X - q[3].X) / 2;
            var rise = (q[1].Y - q[0].Y + q[2].Y - q[3].Y) / 2;
            // Slopes steeper than 1:2 say little about where a row continues; such boxes are taken as level.
            var slope = Math.Abs(run) > 1e-3f && Math.Abs(rise / run) <= 0.5f ? rise / run : 0f;
            items[i] = new Item(i, centerX, centerY, height, left, right, slope);
        }

        if (items.Length == 0)
        {
            return [];
        }

        var lineHeight = Median([.. items.Select(m => m.Height)]);
        var order = new List<int>(items.Length);
        Append(Rows(items), Math.Max(lineHeight, 1f), order, depth: 0);
        return [.. order];
    }

    private static List<List<Item>> Rows(Item[] items)
    {
        // Top to bottom along the page's skew (the median slope): on a page that rises to the right a
        // long line's centre lies higher than a short line's above it.
        var skew = Median([.. items.Select(m => m.Slope)]);
        var x0 = items.Min(m => m.Left);
        float Level(Item m) => m.CenterY - (skew * (m.CenterX - x0));
        Array.Sort(items, (a, b) => Level(a) != Level(b) ? Level(a).CompareTo(Level(b)) : a.Left.CompareTo(b.Left));
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

        foreach (var row in rows)
        {
            row.Sort((a, b) => a.Left.CompareTo(b.Left));
        }

        return rows;
    }

    /// <summary>Appends <paramref name="rows"/> in reading order, a run of rows set in columns one column after the other.</summary>
    private static void Append(List<List<Item>> rows, float lineHeight, List<int> order, int depth)
    {
        var r = 0;
        while (r < rows.Count)
        {
            if (depth < 4 && FindColumns(rows, r, lineHeight) is { } columns)
            {
                var run = rows.GetRange(r, columns.End - r);
                foreach (var left in new[] { true, false })
                {
                    Append([.. run.Select(row => Side(row, columns.Gutter, left).ToList()).Where(row => row.Count > 0)], lineHeight, order, depth + 1);
                }

                r = columns.End;
            }
            else
            {
                order.AddRange(rows[r].Select(m => m.Index));
                r++;
            }
        }
    }

    /// <summary>
    /// The longest run of rows from <paramref name="start"/> that leaves a gutter free, where the
    /// gutter opens between two boxes of the first row, if it separates columns of prose.
    /// </summary>
    private static (int End, Span Gutter)? FindColumns(List<List<Item>> rows, int start, float lineHeight)
    {
        var first = rows[start];
        var minGap = MinGutter * lineHeight;
        (int End, Span Gutter)? best = null;
        var leftEdge = float.MinValue;
        for (var i = 0; i + 1 < first.Count; i++)
        {
            leftEdge = Math.Max(leftEdge, first[i].Right);
            var gutter = new Span(leftEdge, first[i + 1].Left);
            if (gutter.Width < minGap)
            {
                continue;
            }

            var end = start + 1;
            while (end < rows.Count && Free(rows[end], gutter) is { } narrower && narrower.Width >= minGap)
            {
                gutter = narrower;
                end++;
            }

            end = TrimTail(rows, start, end, gutter);

            if ((best is null || end > best.Value.End) && IsProse(rows, start, end, gutter, lineHeight))
            {
                best = (end, gutter);
            }
        }

        return best;
    }

    /// <summary>
    /// Where a run of columns really ends: after its last row with text on both sides, a row on one
    /// side only still belongs to that column while it keeps the column's line pitch (within 1.5
    /// lines of the row before it); a line set further apart, such as a footer under both columns,
    /// ends the run and is read after the columns.
    /// </summary>
    private static int TrimTail(List<List<Item>> rows, int start, int end, Span gutter)
    {
        var lastBoth = start;
        for (var r = start; r < end; r++)
        {
            if (Side(rows[r], gutter, left: true).Any() && Side(rows[r], gutter, left: false).Any())
            {
                lastBoth = r;
            }
        }

        foreach (var left in new[] { true, false })
        {
            var centres = new List<float>();
            for (var r = start; r <= lastBoth; r++)
            {
                if (Side(rows[r], gutter, left).Any())
                {
                    centres.Add(Side(rows[r], gutter, left).Average(m => m.CenterY));
                }
            }

            var pitch = Median([.. centres.Zip(centres.Skip(1), (a, b) => b - a)]);
            var previous = centres[^1];
            for (var r = lastBoth + 1; r < end; r++)
            {
                if (!Side(rows[r], gutter, left).Any())
                {
                    continue;
                }

                var centre = Side(rows[r], gutter, left).Average(m => m.CenterY);
                if (pitch <= 0 || centre - previous > 1.5f * pitch)
                {
                    end = r;
                    break;
                }

                previous = centre;
            }
        }

        return end;
    }

    /// <summary>The boxes of <paramref name="row"/> left (or right) of <paramref name="gutter"/>; in a run, no box crosses it.</summary>
    private static IEnumerable<Item> Side(List<Item> row, Span gutter, bool left) =>
        row.Where(m => left ? m.Right <= gutter.From : m.Left >= gutter.To);

    /// <summary>The widest part of <paramref name="gutter"/> that no box of <paramref name="row"/> (sorted by left edge) covers.</summary>
    private static Span? Free(List<Item> row, Span gutter)
    {
        Span? widest = null;
        var from = gutter.From;
        foreach (var box in row)
        {
            if (box.Left > from)
            {
                var piece = new Span(from, Math.Min(box.Left, gutter.To));
                widest = widest is { } w && w.Width >= piece.Width ? w : piece;
            }

            from = Math.Max(from, box.Right);
            if (from >= gutter.To)
            {
                break;
            }
        }

        if (from < gutter.To)
        {
            var piece = new Span(from, gutter.To);
            widest = widest is { } w && w.Width >= piece.Width ? w : piece;
        }

        return widest;
    }

    /// <summary>Both sides hold text in at least <see cref="MinColumnRows"/> rows, and their rows typically hold a box as long as a line of prose.</summary>
    private static bool IsProse(List<List<Item>> rows, int start, int end, Span gutter, float lineHeight)
    {
        var both = 0;
        var left = new List<float>();
        var right = new List<float>();
        for (var r = start; r < end; r++)
        {
            var l = Side(rows[r], gutter, left: true).ToList();
            var g = Side(rows[r], gutter, left: false).ToList();
            // The widest box of the row on each side: a line of prose is one long box, a table row many short ones.
            if (l.Count > 0)
            {
                left.Add(l.Max(m => m.Right - m.Left));
            }

            if (g.Count > 0)
            {
                right.Add(g.Max(m => m.Right - m.Left));
            }

            both += l.Count > 0 && g.Count > 0 ? 1 : 0;
        }

        var minWidth = MinColumnWidth * lineHeight;
        return both >= MinColumnRows && Median(left) >= minWidth && Median(right) >= minWidth;
    }

    private static float Median(List<float> values) => values.Count == 0 ? 0 : values.Order().ElementAt(values.Count / 2);

    private readonly record struct Span(float From, float To)
    {
        public float Width => To - From;
    }

    private readonly record struct Item(int Index, float CenterX, float CenterY, float Height, float Left, float Right, float Slope);
}
