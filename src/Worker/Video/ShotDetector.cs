namespace Async.Serving.Worker.Video;

/// <summary>A run of similar frames: from <see cref="Start"/> to <see cref="End"/> seconds, represented by the frame at <see cref="Keyframe"/>.</summary>
internal sealed record Shot(double Start, double End, double Keyframe, int FirstFrame, int LastFrame, int KeyframeIndex);

/// <summary>
/// Shot boundaries from frame embeddings.
/// <list type="bullet">
/// <item><b>Cuts.</b> A new shot starts between two consecutive sampled frames when the cosine
/// distance between their embeddings is at least the threshold and also stands out from the
/// distances around it: at least <see cref="Contrast"/> times the median of the up to
/// <see cref="Context"/> distances on each side. The second test keeps a fast pan or a handheld
/// camera (large distances everywhere) in one shot, and lets a cut between two similar-looking
/// scenes through (a modest distance among tiny ones). The boundary is put halfway between the two
/// frames: the cut happened somewhere between them, so this halves the worst error.</item>
/// <item><b>Transitions caught mid-way.</b> Cuts on consecutive steps (a dissolve sampled in the
/// middle, one frame that is neither shot) are one boundary, at the middle of the run.</item>
/// <item><b>Gradual transitions.</b> A dissolve or fade sampled finely is many small steps, none a
/// cut. So the distance across about a second (<c>k</c> samples) is tested the same way: a peak of
/// it, at least the threshold and <see cref="Contrast"/> times the median of the same distance
/// measured outside the transition, and at least <see cref="Accumulation"/> times the largest
/// single step inside the window (so that one overlay appearing is not taken for a dissolve), is
/// one boundary in the middle of the <c>k</c> samples.</item>
/// </list>
/// Each shot's keyframe is its most typical frame: the one with the highest median similarity to the others.
/// </summary>
internal static class ShotDetector
{
    public const double Contrast = 3;
    public const int Context = 4;

    /// <summary>A gradual transition's change across its window is at least this many times its largest single step.</summary>
    public const double Accumulation = 2;

    /// <param name="embeddings">L2-normalised, one per sampled frame, in order.</param>
    /// <param name="times">Each frame's time in seconds.</param>
    /// <param name="duration">The video's length; the last shot ends there.</param>
    public static IReadOnlyList<Shot> Detect(IReadOnlyList<float[]> embeddings, IReadOnlyList<double> times, double threshold, double duration)
    {
        var n = embeddings.Count;
        if (n == 0)
        {
            return [];
        }

        // distances[i] is between frame i - 1 and frame i; distances[0] is unused.
        var distances = new double[n];
        for (var i = 1; i < n; i++)
        {
            distances[i] = Distance(embeddings[i - 1], embeddings[i]);
        }

        // Each boundary: the first frame of the new shot, and the time the old one ends.
        var boundaries = new SortedDictionary<int, double>();
        var cuts = Enumerable.Range(1, n - 1).Where(i => IsCut(distances, i, threshold)).ToList();
        for (var c = 0; c < cuts.Count;)
        {
            var last = c;
            while (last + 1 < cuts.Count && cuts[last + 1] == cuts[last] + 1)
            {
                last++;
            }

            var (from, to) = (cuts[c] - 1, cuts[last]); // the run of steps spans frames from..to
            var middle = (from + to + 1) / 2;
            boundaries[Math.Max(1, middle)] = c == last ? (times[from] + times[to]) / 2 : times[middle];
            c = last + 1;
        }

        foreach (var (start, end) in GradualTransitions(embeddings, times, distances, cuts, threshold))
        {
            boundaries.TryAdd(start, end);
        }

        var shots = new List<Shot>();
        var first = 0;
        var shotStart = 0.0;
        foreach (var (next, end) in boundaries.Append(new KeyValuePair<int, double>(n, Math.Max(duration, times[n - 1]))))
        {
            var key = Keyframe(embeddings, first, next - 1);
            shots.Add(new Shot(Round(shotStart), Round(end), Round(times[key]), first, next - 1, key));
            first = next;
            shotStart = end;
        }

        return shots;
    }

    private static IEnumerable<(int Start, double End)> GradualTransitions(
        IReadOnlyList<float[]> embeddings, IReadOnlyList<double> times, double[] distances, List<int> cuts, double threshold)
    {
        var n = embeddings.Count;
        var interval = n > 1 ? (times[n - 1] - times[0]) / (n - 1) : 0;
        if (interval <= 0)
        {
            yield break;
        }

        var k = Math.Max(2, (int)Math.Round(1.0 / interval));
        if (n <= 3 * k)
        {
            yield break;
        }

        // across[i] is between frame i - k and frame i.
        var across = new double[n];
        for (var i = k; i < n; i++)
        {
            across[i] = Distance(embeddings[i - k], embeddings[i]);
        }

        for (var i = k; i < n; i++)
        {
            if (across[i] < threshold || cuts.Any(c => c > i - k && c <= i))
            {
                continue;
            }

            var peak = true;
            for (var j = Math.Max(k, i - k + 1); j < Math.Min(n, i + k) && peak; j++)
            {
                peak = j == i || across[j] < across[i] || (across[j] == across[i] && j > i);
            }

            // Gradual means accumulated: across the window the change is well above its largest
            // single step. An overlay appearing (a caption) is one step, and is not a transition.
            var largestStep = Enumerable.Range(i - k + 1, k).Max(j => distances[j]);
            if (across[i] < Accumulation * largestStep)
            {
                continue;
            }

            var outside = Enumerable.Range(i - (3 * k), 2 * k + 1).Concat(Enumerable.Range(i + k, 2 * k + 1))
                .Where(j => j >= k && j < n).Select(j => across[j]).Order().ToList();
            if (!peak || outside.Count < k || across[i] < Contrast * outside[outside.Count / 2])
            {
                continue;
            }

            var start = i - (k / 2);
            yield return (start, (times[start - 1] + times[start]) / 2);
        }
    }

    private static bool IsCut(double[] distances, int i, double threshold)
    {
        if (distances[i] < threshold)
        {
            return false;
        }

        var around = new List<double>(2 * Context);
        for (var j = Math.Max(1, i - Context); j <= Math.Min(distances.Length - 1, i + Context); j++)
        {
            if (j != i)
            {
                around.Add(distances[j]);
            }
        }

        if (around.Count == 0)
        {
            return true;
        }

        around.Sort();
        var median = around.Count % 2 == 1 ? around[around.Count / 2] : (around[(around.Count / 2) - 1] + around[around.Count / 2]) / 2;
        return distances[i] >= Contrast * median;
    }

    /// <summary>Cosine distance of two unit vectors: 0 for the same direction, 2 for opposite ones.</summary>
    public static double Distance(float[] a, float[] b) => 1 - System.Numerics.Tensors.TensorPrimitives.Dot(a, b);

    /// <summary>
    /// The frame with the highest median similarity to the shot's frames (up to 64 of them, evenly
    /// spread): the most typical picture. A median, not a mean, so frames of a transition at the
    /// shot's edge, which resemble both shots a little, do not win.
    /// </summary>
    private static int Keyframe(IReadOnlyList<float[]> embeddings, int first, int last)
    {
        var count = last - first + 1;
        if (count < 3)
        {
            return first;
        }

        var references = Enumerable.Range(0, Math.Min(count, 64)).Select(r => first + (int)((long)r * count / Math.Min(count, 64))).Distinct().ToArray();
        var similarities = new float[references.Length];
        var best = first;
        var bestScore = float.NegativeInfinity;
        for (var i = first; i <= last; i++)
        {
            for (var r = 0; r < references.Length; r++)
            {
                similarities[r] = System.Numerics.Tensors.TensorPrimitives.Dot(embeddings[i], embeddings[references[r]]);
            }

            Array.Sort(similarities);
            var score = similarities[similarities.Length / 2];
            if (score > bestScore)
            {
                bestScore = score;
                best = i;
            }
        }

        return best;
    }

    private static double Round(double seconds) => Math.Round(seconds, 3);
}
