using System.Drawing;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Ocr;

namespace Async.Serving.Worker.Video;

/// <summary>
/// Reads the text of one video's frames, one after another, with an OCR model (one reader per
/// job: it remembers the previous frame). Detection runs on every frame; when a
/// frame's boxes are the previous frame's (same count, each overlapping its counterpart with IoU of
/// at least <see cref="MinOverlap"/>) and the pixels inside them barely changed, the previous
/// reading is reused instead of running the recogniser again: a caption that stays on screen for
/// ten seconds is recognised once, not twenty times.
/// </summary>
internal sealed class OcrVideoText(OcrModel model)
{
    public const double MinOverlap = 0.7;

    /// <summary>Mean absolute difference of grey levels (0–255) inside the boxes below which a frame's text is taken as unchanged.</summary>
    public const double MaxChange = 6;

    private RgbImage? _previous;
    private IReadOnlyList<TextBox> _previousBoxes = [];
    private IReadOnlyList<OcrLine> _previousLines = [];

    public async Task<FrameText> ReadAsync(VideoFrame frame, CancellationToken cancellationToken)
    {
        var image = new RgbImage(frame.Width, frame.Height, frame.CopyPixels());
        var boxes = await model.DetectAsync(image, cancellationToken).ConfigureAwait(false);
        var lines = _previous is not null && SameLayout(boxes, _previousBoxes) && Unchanged(image, _previous, boxes)
            ? _previousLines
            : await model.RecognizeAsync(image, boxes, cancellationToken).ConfigureAwait(false);
        _previous = image;
        _previousBoxes = boxes;
        _previousLines = lines;
        return new FrameText(frame.Time, [.. lines.Select(l => (l.Text, l.Confidence))]);
    }

    internal static bool SameLayout(IReadOnlyList<TextBox> current, IReadOnlyList<TextBox> previous)
    {
        if (current.Count != previous.Count)
        {
            return false;
        }

        var used = new bool[previous.Count];
        foreach (var box in current)
        {
            var a = Bounds(box);
            var match = -1;
            for (var j = 0; j < previous.Count && match < 0; j++)
            {
                if (!used[j] && IoU(a, Bounds(previous[j])) >= MinOverlap)
                {
                    match = j;
                }
            }

            if (match < 0)
            {
                return false;
            }

            used[match] = true;
        }

        return true;
    }

    /// <summary>Whether the grey levels inside the boxes moved less than <see cref="MaxChange"/> on average (every other pixel sampled).</summary>
    internal static bool Unchanged(RgbImage current, RgbImage previous, IReadOnlyList<TextBox> boxes)
    {
        if (current.Width != previous.Width || current.Height != previous.Height)
        {
            return false;
        }

        long total = 0, count = 0;
        foreach (var box in boxes)
        {
            var r = Rectangle.Intersect(Rectangle.Round(Bounds(box)), new Rectangle(0, 0, current.Width, current.Height));
            for (var y = r.Top; y < r.Bottom; y += 2)
            {
                for (var x = r.Left; x < r.Right; x += 2)
                {
                    var i = 3 * ((y * current.Width) + x);
                    var a = current.Pixels[i] + current.Pixels[i + 1] + current.Pixels[i + 2];
                    var b = previous.Pixels[i] + previous.Pixels[i + 1] + previous.Pixels[i + 2];
                    total += Math.Abs(a - b);
                    count++;
                }
            }
        }

        return count == 0 || total / 3.0 / count < MaxChange;
    }

    private static RectangleF Bounds(TextBox box)
    {
        var left = box.Points.Min(p => p.X);
        var top = box.Points.Min(p => p.Y);
        return RectangleF.FromLTRB(left, top, box.Points.Max(p => p.X), box.Points.Max(p => p.Y));
    }

    private static double IoU(RectangleF a, RectangleF b)
    {
        var i = RectangleF.Intersect(a, b);
        if (i.IsEmpty)
        {
            return 0;
        }

        var inter = (double)i.Width * i.Height;
        return inter / (((double)a.Width * a.Height) + ((double)b.Width * b.Height) - inter);
    }
}
