using System.Drawing;
using System.Numerics;
using Async.Serving.Models;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Ocr;
using SkiaSharp;

namespace Async.Serving.UnitTests;

/// <summary>The OCR engine's pure parts: DB post-processing on synthetic maps, geometry, CTC decoding, reading order, buckets.</summary>
public sealed class OcrPostProcessingTests
{
    private static readonly OcrConfig Config = new();

    /// <summary>A map with <paramref name="value"/> at pixels whose centres lie in a rectangle of the given centre, size and angle.</summary>
    private static void Paint(float[] map, int width, Vector2 center, float w, float h, float degrees, float value)
    {
        var rect = new RotatedRect(center, new Vector2(MathF.Cos(degrees * MathF.PI / 180), MathF.Sin(degrees * MathF.PI / 180)), w, h);
        var corners = rect.Corners();
        var height = map.Length / width;
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                if (Geometry.InsideConvex(corners, new Vector2(x + 0.5f, y + 0.5f)))
                {
                    map[(y * width) + x] = value;
                }
            }
        }
    }

    private static float Angle(PointF from, PointF to) => MathF.Atan2(to.Y - from.Y, to.X - from.X) * 180 / MathF.PI;

    [Fact]
    public void A_rotated_rectangle_of_text_probability_gives_one_box_of_its_size_and_angle_grown_by_the_unclip_distance()
    {
        const int W = 240, H = 160;
        var map = new float[W * H];
        Paint(map, W, new Vector2(120, 80), 100, 20, 20, 0.9f);

        var boxes = DbPostProcessor.Extract(map, W, H, W, H, Config);

        var box = Assert.Single(boxes);
        // The rectangle's jagged rim holds a few pixels the blob does not reach.
        Assert.InRange(box.Score, 0.8f, 0.9f);
        var p = box.Points;
        // Unclip distance: area × ratio / perimeter = 2000 × 1.5 / 240 = 12.5 on every side.
        Assert.InRange(Geometry.Distance(p[0], p[1]), 125 - 3, 125 + 3);
        Assert.InRange(Geometry.Distance(p[1], p[2]), 45 - 3, 45 + 3);
        Assert.InRange(Angle(p[0], p[1]), 18f, 22f);
        // Clockwise from the top-left, around the rectangle's centre.
        Assert.True(p[0].X < p[1].X && p[3].X < p[2].X && p[0].Y < p[3].Y);
        var center = new PointF(p.Average(q => q.X), p.Average(q => q.Y));
        Assert.InRange(center.X, 118, 122);
        Assert.InRange(center.Y, 78, 82);
    }

    [Fact]
    public void Two_separate_blobs_give_two_boxes_and_the_score_modes_agree_on_a_uniform_blob()
    {
        const int W = 200, H = 100;
        var map = new float[W * H];
        Paint(map, W, new Vector2(50, 30), 60, 12, 0, 0.8f);
        Paint(map, W, new Vector2(140, 70), 70, 14, 0, 0.95f);

        var boxes = DbPostProcessor.Extract(map, W, H, W, H, Config);
        var fast = DbPostProcessor.Extract(map, W, H, W, H, Config, scoreComponent: true);

        Assert.Equal(2, boxes.Count);
        Assert.Equal(2, fast.Count);
        Assert.Contains(boxes, b => b.Points.Average(p => p.X) is > 45 and < 55 && Math.Abs(b.Score - 0.8f) < 0.01f);
        Assert.Contains(boxes, b => b.Points.Average(p => p.X) is > 135 and < 145 && Math.Abs(b.Score - 0.95f) < 0.01f);
        Assert.All(fast, b => Assert.True(Math.Abs(b.Score - 0.8f) < 0.01f || Math.Abs(b.Score - 0.95f) < 0.01f));
    }

    [Fact]
    public void A_blob_above_the_pixel_threshold_but_below_the_box_threshold_is_dropped()
    {
        const int W = 200, H = 100;
        var map = new float[W * H];
        Paint(map, W, new Vector2(50, 30), 60, 12, 0, 0.45f);
        Paint(map, W, new Vector2(140, 70), 60, 12, 0, 0.9f);

        var box = Assert.Single(DbPostProcessor.Extract(map, W, H, W, H, Config));

        Assert.InRange(box.Points.Average(p => p.X), 135, 145);
    }

    [Fact]
    public void Specks_thinner_than_the_minimum_side_are_dropped()
    {
        const int W = 100, H = 100;
        var map = new float[W * H];
        Paint(map, W, new Vector2(20, 20), 2, 2, 0, 1f);
        Paint(map, W, new Vector2(60, 60), 50, 2, 0, 1f);

        Assert.Empty(DbPostProcessor.Extract(map, W, H, W, H, Config));
    }

    [Fact]
    public void Boxes_map_back_to_the_original_image_and_stay_inside_it()
    {
        // A 100×50 map of a 400×200 image: coordinates scale by 4. The blob touches the left edge.
        const int W = 100, H = 50;
        var map = new float[W * H];
        Paint(map, W, new Vector2(20, 25), 40, 10, 0, 0.9f);

        var box = Assert.Single(DbPostProcessor.Extract(map, W, H, 400, 200, Config));

        // Unclip: 400 × 1.5 / 100 = 6 map pixels a side: x from −6 (clamped to 0) to 46, y from 14 to 36.
        Assert.Equal(0, box.Points[0].X, 0.5f);
        Assert.Equal(46 * 4, box.Points[1].X, 2f);
        Assert.Equal(14 * 4, box.Points[0].Y, 2f);
        Assert.Equal(36 * 4, box.Points[3].Y, 2f);
    }

    [Fact]
    public void Minimum_area_rectangle_of_a_rotated_square_hull_is_the_square()
    {
        var rect = new RotatedRect(new Vector2(10, 10), Vector2.Normalize(new Vector2(1, 1)), 8, 8);
        var hull = Geometry.ConvexHull([.. rect.Corners(), new Vector2(10, 10), new Vector2(11, 9)]);

        var found = Geometry.MinAreaRect(hull);

        Assert.Equal(4, hull.Count);
        Assert.Equal(64, found.Area, 0.1f);
        Assert.Equal(10, found.Center.X, 0.01f);
        Assert.Equal(10, found.Center.Y, 0.01f);
    }

    [Fact]
    public void Corners_are_ordered_clockwise_from_the_top_left()
    {
        PointF[] shuffled = [new(110, 40), new(10, 20), new(12, 50), new(108, 10)];

        var ordered = Geometry.OrderClockwise(shuffled);

        Assert.Equal([new(10, 20), new(108, 10), new(110, 40), new(12, 50)], ordered);
    }

    [Fact]
    public void A_perspective_crop_is_rectified_and_a_tall_one_turned_to_lie_horizontally()
    {
        // A 60×20 image: left half black, right half white.
        var pixels = new byte[3 * 60 * 20];
        for (var y = 0; y < 20; y++)
        {
            for (var x = 30; x < 60; x++)
            {
                pixels[(((y * 60) + x) * 3) + 0] = pixels[(((y * 60) + x) * 3) + 1] = pixels[(((y * 60) + x) * 3) + 2] = 255;
            }
        }

        var image = new RgbImage(60, 20, pixels);
        using var wide = TextCrop.Rectify(image, [new(0, 0), new(60, 0), new(60, 20), new(0, 20)]);
        Assert.Equal((60, 20), (wide.Width, wide.Height));
        Assert.Equal(SKColors.Black, wide.GetPixel(5, 10));
        Assert.Equal(SKColors.White, wide.GetPixel(55, 10));

        // A margin widens the crop across the line only: 25 % of 20 px above and below.
        using var padded = TextCrop.Rectify(image, [new(0, 0), new(60, 0), new(60, 20), new(0, 20)], margin: 0.25f);
        Assert.Equal((60, 30), (padded.Width, padded.Height));

        // A 10×20 strip straddling the edge is tall: turned 90° counter-clockwise, its right (white) side comes on top.
        using var tall = TextCrop.Rectify(image, [new(25, 0), new(35, 0), new(35, 20), new(25, 20)]);
        Assert.Equal((20, 10), (tall.Width, tall.Height));
        Assert.Equal(SKColors.White, tall.GetPixel(10, 1));
        Assert.Equal(SKColors.Black, tall.GetPixel(10, 8));
    }

    [Fact]
    public void Ctc_merges_repeats_drops_blanks_and_averages_the_kept_probabilities()
    {
        var decoder = new CtcDecoder(["a", "b", "c", " "]);
        // (class, probability) per step: a a _ a b ␣ b b _
        float[] steps = [1, 0.9f, 1, 0.8f, 0, 0.99f, 1, 0.7f, 2, 0.6f, 4, 0.5f, 2, 0.4f, 2, 0.3f, 0, 0.9f];

        var (text, confidence) = decoder.Decode(steps);

        Assert.Equal("aab b", text);
        Assert.Equal((0.9f + 0.7f + 0.6f + 0.5f + 0.4f) / 5, confidence, 5);
        Assert.Equal(5, decoder.ClassCount);
        Assert.Equal((string.Empty, 0f), decoder.Decode([0, 0.99f, 0, 0.98f]));
    }

    [Fact]
    public void Ctc_reads_a_space_where_a_blank_step_gives_the_space_enough_probability_but_not_next_to_punctuation()
    {
        var decoder = new CtcDecoder(["a", "b", "(", ",", " "]);
        // (class, probability, space probability) per step: a _ b _ ( _ a _ , _ b
        float[] steps = [1, 0.9f, 0, 0, 0.9f, 0.2f, 2, 0.9f, 0, 0, 0.9f, 0.3f, 3, 0.9f, 0, 0, 0.9f, 0.3f, 1, 0.9f, 0, 0, 0.9f, 0.3f, 4, 0.9f, 0, 0, 0.9f, 0.3f, 2, 0.9f, 0];

        Assert.Equal("a b (a, b", decoder.Decode(steps, 3, 0.1f).Text);
        Assert.Equal("ab(a,b", decoder.Decode(steps, 3, 0.5f).Text);
    }

    [Theory]
    [InlineData(384, 191, 1280, 736, 1280, 640)]
    [InlineData(100, 50, 1280, 736, 1280, 640)]
    [InlineData(1152, 573, 1280, 736, 1280, 640)]
    [InlineData(2400, 1600, 1280, 736, 1280, 864)]
    [InlineData(1000, 800, 1280, 736, 992, 800)]
    public void Small_images_are_scaled_up_for_detection_until_the_shorter_side_reaches_the_minimum_or_the_longer_the_maximum(
        int w, int h, int max, int min, int ew, int eh)
    {
        Assert.Equal((ew, eh), OcrModel.DetectionSize(w, h, max, min));
    }

    [Fact]
    public void A_curved_line_is_kept_and_grown_by_its_own_thickness_not_its_rectangle()
    {
        const int W = 400, H = 100;
        var map = new float[W * H];
        // A line 8 px thick bowing 16 px over 360 px: its minimum-area rectangle is about 24 px tall.
        for (var x = 20; x < 380; x++)
        {
            var t = (x - 200) / 180f;
            var centre = 40 + (16 * t * t);
            for (var y = (int)(centre - 4); y < (int)(centre + 4); y++)
            {
                map[(y * W) + x] = 0.9f;
            }
        }

        var box = Assert.Single(DbPostProcessor.Extract(map, W, H, W, H, Config, scoreComponent: true));
        var height = (Geometry.Distance(box.Points[0], box.Points[3]) + Geometry.Distance(box.Points[1], box.Points[2])) / 2;
        // Grown by the rectangle's area over its perimeter (1.5 × 24 × 360 / 768 ≈ 17 px a side) it would be about 58 px tall.
        Assert.InRange(height, 24, 45);
        Assert.True(box.Score > 0.85f, $"score {box.Score}");
    }

    [Fact]
    public void Reading_order_groups_boxes_into_rows_then_reads_each_left_to_right()
    {
        static PointF[] Box(float x, float y, float w, float h) => [new(x, y), new(x + w, y), new(x + w, y + h), new(x, y + h)];
        List<PointF[]> boxes =
        [
            Box(10, 80, 200, 24),   // row 2
            Box(300, 14, 150, 24),  // row 1, right, a little lower than its neighbour
            Box(10, 10, 250, 24),   // row 1, left
            Box(400, 84, 100, 20),  // row 2, right
            Box(10, 150, 300, 30),  // row 3
        ];

        Assert.Equal([2, 1, 0, 3, 4], ReadingOrder.Order(boxes));
    }

    private static PointF[] Rect(float x, float y, float w, float h = 24) => [new(x, y), new(x + w, y), new(x + w, y + h), new(x, y + h)];

    [Fact]
    public void A_page_in_two_columns_is_read_one_column_after_the_other()
    {
        // A title across the page, two columns of prose (24 px lines, 40 px gutter; the left one with a
        // paragraph break, the right one set a few pixels lower), then a footer across the page.
        var boxes = new List<PointF[]> { Rect(20, 10, 700, 30) };
        float[] leftWidths = [330, 335, 300, 0, 332, 310, 120];
        float[] rightWidths = [330, 334, 331, 329, 280, 335, 333];
        for (var row = 0; row < 7; row++)
        {
            if (leftWidths[row] > 0)
            {
                boxes.Add(Rect(20, 60 + (row * 32), leftWidths[row]));
            }
        }

        for (var row = 0; row < 7; row++)
        {
            boxes.Add(Rect(390, 64 + (row * 32), rightWidths[row]));
        }

        boxes.Add(Rect(20, 300, 500));
        var expected = Enumerable.Range(0, boxes.Count).ToArray();

        // The detector's order is any order.
        var shuffled = expected.OrderBy(i => (i * 7919) % 13).ToArray();
        var order = ReadingOrder.Order([.. shuffled.Select(i => boxes[i])]);

        Assert.Equal(expected, order.Select(i => shuffled[i]));
    }

    [Fact]
    public void A_longer_column_keeps_its_last_lines_and_a_footer_set_apart_is_read_last()
    {
        var boxes = new List<PointF[]>();
        for (var row = 0; row < 6; row++)
        {
            boxes.Add(Rect(20, 20 + (row * 32), 330)); // the left column runs two lines longer
        }

        for (var row = 0; row < 4; row++)
        {
            boxes.Add(Rect(390, 20 + (row * 32), 330));
        }

        boxes.Add(Rect(20, 20 + (7 * 32), 200)); // a short footer under the left column, a blank line below it
        Assert.Equal(Enumerable.Range(0, boxes.Count), ReadingOrder.Order(boxes));
    }

    [Fact]
    public void Three_columns_are_read_left_middle_right()
    {
        var boxes = new List<PointF[]>();
        for (var column = 0; column < 3; column++)
        {
            for (var row = 0; row < 5; row++)
            {
                boxes.Add(Rect(20 + (column * 300), 20 + (row * 30), row == 4 ? 150 : 262));
            }
        }

        Assert.Equal(Enumerable.Range(0, 15), ReadingOrder.Order(boxes));
    }

    [Fact]
    public void A_form_and_a_table_of_figures_stay_row_by_row()
    {
        // Labels and values: the labels are too narrow for prose, though a gutter runs down the page.
        string[] labels = ["Name", "Invoice number", "Date", "Amount due", "Address"];
        var form = new List<PointF[]>();
        for (var row = 0; row < labels.Length; row++)
        {
            form.Add(Rect(20, 20 + (row * 32), labels[row].Length * 12));
            form.Add(Rect(260, 20 + (row * 32), row == 4 ? 420 : 150));
        }

        Assert.Equal(Enumerable.Range(0, form.Count), ReadingOrder.Order(form));

        // Four columns of figures.
        var table = new List<PointF[]>();
        for (var row = 0; row < 6; row++)
        {
            for (var column = 0; column < 4; column++)
            {
                table.Add(Rect(20 + (column * 160), 20 + (row * 30), 70));
            }
        }

        Assert.Equal(Enumerable.Range(0, table.Count), ReadingOrder.Order(table));
    }

    [Fact]
    public void The_pieces_of_a_tilted_line_stay_one_row()
    {
        // One line rising 1 in 10 to the right, split at a wide space; its right piece sits a line height higher.
        static PointF[] Piece(float x, float y, float w, float h) => [new(x, y), new(x + w, y - (w / 10)), new(x + w, y - (w / 10) + h), new(x, y + h)];
        List<PointF[]> boxes =
        [
            Piece(500, 60, 300, 30),  // right piece
            Piece(10, 110, 450, 30),  // left piece
            Piece(10, 200, 450, 30),  // the next line
        ];

        Assert.Equal([1, 0, 2], ReadingOrder.Order(boxes));
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(96, 0)]
    [InlineData(97, 1)]
    [InlineData(256, 2)]
    [InlineData(5000, 2)]
    public void A_crop_goes_to_the_smallest_bucket_that_holds_it_or_the_largest(int width, int bucket)
    {
        Assert.Equal(bucket, OcrModel.ChooseBucket([96, 160, 256], width));
    }

    [Theory]
    [InlineData(2400, 1600, 1280, 1280, 864)]
    [InlineData(640, 480, 1280, 640, 480)]
    [InlineData(100, 50, 1280, 96, 64)]
    [InlineData(20, 10, 1280, 32, 32)]
    [InlineData(4000, 30, 1280, 1280, 32)]
    public void Detection_input_is_scaled_down_to_the_maximum_side_in_multiples_of_32(int w, int h, int max, int ew, int eh)
    {
        Assert.Equal((ew, eh), OcrModel.DetectionSize(w, h, max));
    }

    [Fact]
    public void Crops_scale_to_the_network_height_keeping_their_ratio()
    {
        Assert.Equal(480, TextCrop.ScaledWidth(200, 20));
        Assert.Equal(1, TextCrop.ScaledWidth(1, 500));
        Assert.Equal(49, TextCrop.ScaledWidth(97, 96));
    }
}
