namespace Async.Serving.Worker.Video;

/// <summary>A run of similar frames: from <see cref="Start"/> to <see cref="End"/> seconds, represented by the frame at <see cref="Keyframe"/>.</summary>
internal sealed record Shot(double Start, double End, double Keyframe, int FirstFrame, int LastFrame, int KeyframeIndex);

/// <summary>
/// Shot boundaries from frame embeddings. A new shot starts between two consecutive sampled frames
/// when the cosine distance between their embeddings is at least the threshold and also stands out
/// from the distances around it: at least <see cref="Contrast"/> times the median of the up to
/// <see cref="Context"/> distances on each side. The second test keeps a fast pan or a handheld
/// camera (large distances everywhere) in one shot, and lets a cut between two similar-looking
/// scenes through (a modest distance among tiny ones). The boundary is put halfway between the two
/// frames (the cut happened somewhere between them, so this halves the worst error). Each shot's
/// keyframe is its frame closest to the shot's mean embedding: its most typical picture.
/// </summary>
internal static class ShotDetector
{
    public const double Contrast = 3;
    public const int Context = 4;

    /// <param name="embeddings">L2-normalised, one per sampled frame, in order.</param>
    /// <param name="times">Each frame's time in seconds.</param>
    /// <param name="duration">The video's length; the last shot ends there.</param>
    public static IReadOnlyList<Shot> Detect(IReadOnlyList<float[]> embeddings, IReadOnlyList<double> times, double threshold, double duration)
    {
        if (embeddings.Count == 0)
        {
            return [];
        }

        // distances[i] is between frame i - 1 and frame i; distances[0] is unused.
        var distances = new double[embeddings.Count];
        for (var i = 1; i < embeddings.Count; i++)
        {
            distances[i] = Distance(embeddings[i - 1], embeddings[i]);
        }

        var shots = new List<Shot>();
        var first = 0;
        var start = 0.0;
        for (var i = 1; i <= embeddings.Count; i++)
        {
            if (i < embeddings.Count && !IsCut(distances, i, threshold))
            {
                continue;
            }

            var end = i < embeddings.Count ? (times[i - 1] + times[i]) / 2 : Math.Max(duration, times[i - 1]);
            var key = Keyframe(embeddings, first, i - 1);
            shots.Add(new Shot(Round(start), Round(end), Round(times[key]), first, i - 1, key));
            first = i;
            start = end;
        }

        return shots;
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

    private static int Keyframe(IReadOnlyList<float[]> embeddings, int first, int last)
    {
        if (last - first < 2)
        {
            return first;
        }

        var mean = new float[embeddings[first].Length];
        for (var i = first; i <= last; i++)
        {
            System.Numerics.Tensors.TensorPrimitives.Add(mean, embeddings[i], mean);
        }

        var best = first;
        var bestScore = float.NegativeInfinity;
        for (var i = first; i <= last; i++)
        {
            var score = System.Numerics.Tensors.TensorPrimitives.Dot(mean, embeddings[i]);
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
