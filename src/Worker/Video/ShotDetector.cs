namespace Async.Serving.Worker.Video;

/// <summary>A run of similar frames: from <see cref="Start"/> to <see cref="End"/> seconds, represented by the frame at <see cref="Keyframe"/>.</summary>
internal sealed record Shot(double Start, double End, double Keyframe, int FirstFrame, int LastFrame, int KeyframeIndex);

/// <summary>
/// Shot boundaries from frame embeddings: a new shot starts where the cosine distance between two
/// consecutive sampled frames exceeds the threshold. The boundary is put halfway between the two
/// frames (the cut happened somewhere between them, so this halves the worst error). Each shot's
/// keyframe is its frame closest to the shot's mean embedding: its most typical picture.
/// </summary>
internal static class ShotDetector
{
    /// <param name="embeddings">L2-normalised, one per sampled frame, in order.</param>
    /// <param name="times">Each frame's time in seconds.</param>
    /// <param name="duration">The video's length; the last shot ends there.</param>
    public static IReadOnlyList<Shot> Detect(IReadOnlyList<float[]> embeddings, IReadOnlyList<double> times, double threshold, double duration)
    {
        if (embeddings.Count == 0)
        {
            return [];
        }

        var shots = new List<Shot>();
        var first = 0;
        var start = 0.0;
        for (var i = 1; i <= embeddings.Count; i++)
        {
            if (i < embeddings.Count && Distance(embeddings[i - 1], embeddings[i]) <= threshold)
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
