namespace Async.Serving.Worker.Video;

/// <summary>A line of text on screen from <see cref="Start"/> to <see cref="End"/> seconds.</summary>
internal sealed record TextSegment(double Start, double End, string Text);

/// <summary>The lines read on one analysed frame.</summary>
internal sealed record FrameText(double Time, IReadOnlyList<(string Text, float Confidence)> Lines);

/// <summary>
/// Merges the lines read on consecutive frames into segments: a line seen again on the next frame
/// (exactly, or within a small edit distance, since OCR of the same caption can differ by a
/// character between frames) extends its segment; a gap of one frame is bridged. A segment ends one
/// frame interval after the last frame it was seen on, and its text is the reading with the highest
/// summed confidence.
/// </summary>
internal static class TextTimeline
{
    private const double MinSimilarity = 0.8;
    private const int BridgedFrames = 1;

    public static IReadOnlyList<TextSegment> Build(IReadOnlyList<FrameText> frames, double frameInterval, double duration)
    {
        var open = new List<Open>();
        var closed = new List<Open>();
        for (var f = 0; f < frames.Count; f++)
        {
            foreach (var (text, confidence) in frames[f].Lines)
            {
                var key = Normalize(text);
                if (key.Length == 0)
                {
                    continue;
                }

                var match = open.Where(o => o.LastFrame != f).Select(o => (o, s: Similarity(o.Key, key))).Where(x => x.s >= MinSimilarity)
                    .OrderByDescending(x => x.s).Select(x => x.o).FirstOrDefault();
                if (match is null)
                {
                    match = new Open(key, f, frames[f].Time);
                    open.Add(match);
                }

                match.LastFrame = f;
                match.LastTime = frames[f].Time;
                match.Readings[text] = match.Readings.GetValueOrDefault(text) + confidence;
            }

            // Segments not seen for more than the bridged frames are finished.
            for (var i = open.Count - 1; i >= 0; i--)
            {
                if (f - open[i].LastFrame > BridgedFrames)
                {
                    closed.Add(open[i]);
                    open.RemoveAt(i);
                }
            }
        }

        closed.AddRange(open);
        return [.. closed
            .OrderBy(o => o.FirstTime).ThenBy(o => o.FirstFrame)
            .Select(o => new TextSegment(
                Math.Round(o.FirstTime, 3),
                Math.Round(Math.Min(o.LastTime + frameInterval, Math.Max(duration, o.LastTime)), 3),
                o.Readings.MaxBy(r => r.Value).Key))];
    }

    private static string Normalize(string text) => string.Join(' ', text.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToUpperInvariant();

    /// <summary>1 − Levenshtein distance / longer length.</summary>
    internal static double Similarity(string a, string b)
    {
        if (a == b)
        {
            return 1;
        }

        if (a.Length == 0 || b.Length == 0)
        {
            return 0;
        }

        return 1 - ((double)EditDistance(a, b) / Math.Max(a.Length, b.Length));
    }

    /// <summary>The Levenshtein distance: insertions, deletions and substitutions from <paramref name="a"/> to <paramref name="b"/>.</summary>
    internal static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }

    private sealed class Open(string key, int firstFrame, double firstTime)
    {
        public string Key { get; } = key;

        public int FirstFrame { get; } = firstFrame;

        public double FirstTime { get; } = firstTime;

        public int LastFrame { get; set; } = firstFrame;

        public double LastTime { get; set; } = firstTime;

        public Dictionary<string, float> Readings { get; } = new(StringComparer.Ordinal);
    }
}
