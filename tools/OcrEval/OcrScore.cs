namespace Async.Serving.OcrEval;

/// <summary>
/// Scores OCR output against ground truth: word recall (the truth's words found in the output, as
/// a multiset: reading order does not count), character error rate (Levenshtein distance between
/// the texts, lines joined by one space and runs of white space collapsed, over the truth's
/// length; reading order counts here) and line counts.
/// </summary>
internal static class OcrScore
{
    public static string[] Words(string text) => text.Split([' ', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Fraction of the truth's words found in <paramref name="read"/> (each found word used once).</summary>
    public static double WordRecall(string truth, string read)
    {
        var pool = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var w in Words(read))
        {
            pool[w] = pool.GetValueOrDefault(w) + 1;
        }

        var expected = Words(truth);
        var found = 0;
        foreach (var w in expected)
        {
            if (pool.GetValueOrDefault(w) > 0)
            {
                pool[w]--;
                found++;
            }
        }

        return expected.Length == 0 ? 1 : (double)found / expected.Length;
    }

    /// <summary>Edit distance between the normalised texts over the normalised truth's length.</summary>
    public static double CharacterErrorRate(string truth, string read)
    {
        var t = string.Join(' ', Words(truth));
        var r = string.Join(' ', Words(read));
        return t.Length == 0 ? (r.Length == 0 ? 0 : 1) : (double)Async.Serving.Worker.Video.TextTimeline.EditDistance(t, r) / t.Length;
    }

    public static int Lines(string text) => text.Split('\n').Count(l => l.Trim().Length > 0);
}
