using System.Globalization;
using SkiaSharp;

namespace Async.Serving.Benchmark;

/// <summary>One load of the result cache step: jobs/s end to end and submit latency.</summary>
internal sealed record CacheLoadFigure(int Jobs, int Succeeded, int Hits, int Refused, double JobsPerSecond, double SubmitPerSecond, double SubmitP50Ms, double SubmitP99Ms);

/// <summary>The result cache step: the same jobs as misses (computed, stored) and then as hits.</summary>
internal sealed record CacheFigure(string Model, int Concurrency, CacheLoadFigure Misses, CacheLoadFigure Hits);

/// <summary>
/// The result cache's hit path beside its miss path, in one run on one API and worker (docs/cache.md):
/// <c>N</c> distinct tiny PNGs on the trivial model (every one a miss: looked up, queued, computed,
/// stored by the completion), then the same <c>N</c> again (every one a hit: a finished job, no
/// message, no worker). Jobs/s counts from the first submit to the last completion.
/// </summary>
internal sealed class CacheScenario(LoadClient client, int concurrency, Action<IEnumerable<string>> track)
{
    public async Task<CacheFigure> RunAsync(string model, int jobs)
    {
        var inputs = DistinctPngs(jobs);
        var misses = await LoadAsync(model, inputs).ConfigureAwait(false);
        Console.WriteLine($"  misses: {Line(misses)}");
        var hits = await LoadAsync(model, inputs).ConfigureAwait(false);
        Console.WriteLine($"  hits:   {Line(hits)}");
        return new CacheFigure(model, concurrency, misses, hits);
    }

    public static IEnumerable<(string Figure, string Value, string Goal)> Rows(CacheFigure c)
    {
        yield return ($"result cache, misses ({c.Model}, N={c.Misses.Jobs}, {c.Concurrency} clients)", $"{c.Misses.JobsPerSecond:F0} jobs/s",
            $"submit p50 / p99 {c.Misses.SubmitP50Ms:F1} / {c.Misses.SubmitP99Ms:F1} ms; {c.Misses.Succeeded} succeeded, {c.Misses.Hits} hits");
        yield return ($"result cache, hits (the same {c.Hits.Jobs} again)", $"{c.Hits.JobsPerSecond:F0} jobs/s",
            $"submit p50 / p99 {c.Hits.SubmitP50Ms:F1} / {c.Hits.SubmitP99Ms:F1} ms; {c.Hits.Succeeded} succeeded, {c.Hits.Hits} hits; hits / misses {c.Hits.JobsPerSecond / Math.Max(0.001, c.Misses.JobsPerSecond):F1}x");
    }

    private async Task<CacheLoadFigure> LoadAsync(string model, IReadOnlyList<byte[]> inputs)
    {
        var load = await client.SubmitManyAsync(model, inputs, "image/png", inputs.Count, concurrency, cache: true).ConfigureAwait(false);
        track(load.Jobs.Select(j => j.Id));
        var finished = await client.WaitAllAsync(load.Jobs, TimeSpan.FromSeconds(300)).ConfigureAwait(false);
        var succeeded = finished.Where(f => f.Status == "succeeded").ToList();
        var last = succeeded.Count > 0 ? succeeded.Max(f => f.CompletedAt ?? load.LastSubmit) : load.LastSubmit;
        var seconds = Math.Max(0.001, (last - load.FirstSubmit).TotalSeconds);
        var latencies = load.Jobs.Select(j => j.LatencyMs).Order().ToArray();
        return new CacheLoadFigure(inputs.Count, succeeded.Count, succeeded.Count(f => f.Cache == "hit"), load.Refused,
            Math.Round(succeeded.Count / seconds, 1), Math.Round(load.Jobs.Count / Math.Max(0.001, load.SubmitSeconds), 1),
            Percentile(latencies, 0.50), Percentile(latencies, 0.99));
    }

    private static string Line(CacheLoadFigure f) => string.Create(CultureInfo.InvariantCulture,
        $"{f.JobsPerSecond:F0} jobs/s end to end ({f.Succeeded}/{f.Jobs} succeeded, {f.Hits} hits), submit p50 {f.SubmitP50Ms:F1} ms p99 {f.SubmitP99Ms:F1} ms");

    /// <summary><paramref name="count"/> 8×8 PNGs that differ in their first pixels (the index in RGB), so each is a key of its own.</summary>
    private static List<byte[]> DistinctPngs(int count)
    {
        var pngs = new List<byte[]>(count);
        for (var i = 0; i < count; i++)
        {
            using var bitmap = new SKBitmap(8, 8);
            bitmap.Erase(new SKColor(17, 34, 51));
            bitmap.SetPixel(0, 0, new SKColor((byte)(i & 0xff), (byte)((i >> 8) & 0xff), (byte)((i >> 16) & 0xff)));
            using var image = SKImage.FromBitmap(bitmap);
            using var data = image.Encode(SKEncodedImageFormat.Png, 100);
            pngs.Add(data.ToArray());
        }

        return pngs;
    }

    private static double Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? 0 : Math.Round(sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)], 2);
}
