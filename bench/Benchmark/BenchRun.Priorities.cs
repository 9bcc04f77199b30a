using System.Globalization;
using System.Text.Json;

namespace Async.Serving.Benchmark;

/// <summary>
/// Queue time (created_at to started_at) of the jobs of one priority in one backlog, and the start
/// into the drain (started_at less the first job's started_at), which leaves out the time every job
/// spent before any worker ran (the backlog being built, the worker starting).
/// </summary>
internal sealed record LaneFigure(string Priority, int Jobs, int Succeeded, double QueueP50Ms, double QueueP99Ms, double QueueMeanMs, double DrainP50Ms, double DrainP99Ms);

/// <summary>
/// One backlog drained by one worker: <see cref="Mixed"/> with the jobs' priorities drawn 70 % low,
/// 20 % normal, 10 % high; <see cref="Baseline"/> the same jobs, all normal, each line under the
/// priority the job had in the mixed run (so each class's figure compares like with like).
/// </summary>
internal sealed record PriorityFigure(string Model, int Jobs, double DrainSeconds, IReadOnlyList<LaneFigure> Mixed, IReadOnlyList<LaneFigure> Baseline, double BaselineDrainSeconds);

internal sealed partial class BenchRun
{
    /// <summary>70 % low, 20 % normal, 10 % high, shuffled with a fixed seed, so both runs submit the same sequence.</summary>
    private static string[] PriorityMix(int jobs)
    {
        var random = new Random(1337);
        return [.. Enumerable.Range(0, jobs).Select(_ => random.Next(10) switch
        {
            0 => "high",
            1 or 2 => "normal",
            _ => "low",
        })];
    }

    /// <summary>
    /// Step 8: a backlog of <see cref="BenchOptions.PriorityJobs"/> ResNet-18 jobs built with no worker,
    /// then drained by one worker; once with mixed priorities, once all normal (the baseline).
    /// </summary>
    private async Task<PriorityFigure> PrioritiesAsync(IReadOnlyList<byte[]> photos)
    {
        var mix = PriorityMix(options.PriorityJobs);
        var (mixed, drain) = await DrainBacklogAsync(photos, mix, i => mix[i]).ConfigureAwait(false);
        var (baseline, baselineDrain) = await DrainBacklogAsync(photos, mix, _ => "normal").ConfigureAwait(false);
        var figure = new PriorityFigure($"{BenchRepository.ResNet}@1", options.PriorityJobs, drain, mixed, baseline, baselineDrain);
        Console.WriteLine($"  {"priority",-8} {"jobs",5} {"mixed p50",10} {"mixed p99",10} {"all-normal p50",15} {"all-normal p99",15}   queue time = started_at - created_at, ms");
        foreach (var lane in mixed)
        {
            var same = baseline.Single(b => b.Priority == lane.Priority);
            Console.WriteLine($"  {lane.Priority,-8} {lane.Jobs,5} {lane.QueueP50Ms,10:F0} {lane.QueueP99Ms,10:F0} {same.QueueP50Ms,15:F0} {same.QueueP99Ms,15:F0}");
        }

        Console.WriteLine($"  {"priority",-8} {"jobs",5} {"mixed p50",10} {"mixed p99",10} {"all-normal p50",15} {"all-normal p99",15}   start into the drain = started_at - first started_at, ms");
        foreach (var lane in mixed)
        {
            var same = baseline.Single(b => b.Priority == lane.Priority);
            Console.WriteLine($"  {lane.Priority,-8} {lane.Jobs,5} {lane.DrainP50Ms,10:F0} {lane.DrainP99Ms,10:F0} {same.DrainP50Ms,15:F0} {same.DrainP99Ms,15:F0}");
        }

        Console.WriteLine($"  drained in {drain:F1} s (mixed) and {baselineDrain:F1} s (all normal)");
        return figure;
    }

    /// <summary>Submits the backlog with no worker, starts one, waits for every job; queue times by the priority of the mixed run.</summary>
    private async Task<(IReadOnlyList<LaneFigure> Lanes, double DrainSeconds)> DrainBacklogAsync(IReadOnlyList<byte[]> photos, string[] classes, Func<int, string> priority)
    {
        var load = await _client!.SubmitManyAsync(BenchRepository.ResNet, photos, "image/jpeg", classes.Length, options.Concurrency, priority: priority).ConfigureAwait(false);
        _jobIds.AddRange(load.Jobs.Select(j => j.Id));
        if (load.Refused > 0)
        {
            Console.WriteLine($"  {load.Refused} submits refused: {string.Join(", ", load.RefusedBy.Select(r => $"{r.Key} × {r.Value}"))}");
        }

        // SubmitManyAsync keeps the submit order: the i-th ticket is the i-th job (none refused above).
        var classOf = load.Jobs.Select((j, i) => (j.Id, Class: classes[i])).ToDictionary(x => x.Id, x => x.Class);
        var (worker, _) = await StartWorkerAsync(BenchRepository.ResNet).ConfigureAwait(false);
        IReadOnlyList<Finished> finished;
        try
        {
            finished = await _client.WaitAllAsync(load.Jobs, TimeSpan.FromSeconds(600)).ConfigureAwait(false);
        }
        finally
        {
            await worker.StopAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        }

        ReportUnsucceeded(finished);
        var succeeded = finished.Where(f => f.Status == "succeeded" && f.StartedAt is not null && f.CreatedAt is not null).ToList();
        var firstStart = succeeded.Count > 0 ? succeeded.Min(f => f.StartedAt!.Value) : default;
        var drain = succeeded.Count > 0 ? (succeeded.Max(f => f.CompletedAt ?? f.StartedAt!.Value) - firstStart).TotalSeconds : 0;
        var lanes = new[] { "high", "normal", "low" }.Select(p =>
        {
            var jobs = succeeded.Where(f => classOf.GetValueOrDefault(f.Id) == p).ToList();
            var waits = jobs.Select(f => (f.StartedAt!.Value - f.CreatedAt!.Value).TotalMilliseconds).Order().ToArray();
            var intoDrain = jobs.Select(f => (f.StartedAt!.Value - firstStart).TotalMilliseconds).Order().ToArray();
            return new LaneFigure(p, classes.Count(c => c == p), waits.Length, Percentile(waits, 0.50), Percentile(waits, 0.99),
                waits.Length > 0 ? Math.Round(waits.Average(), 1) : 0, Percentile(intoDrain, 0.50), Percentile(intoDrain, 0.99));
        }).ToList();
        return (lanes, Math.Round(drain, 2));
    }

    /// <summary><c>--only priorities</c>: the API and step 8 alone, written to <c>priorities.json</c>.</summary>
    public async Task<PriorityFigure> RunPrioritiesOnlyAsync()
    {
        await StartAloneAsync().ConfigureAwait(false);
        var photos = BenchImages.Photos(64);
        Console.WriteLine($"8. priorities: a backlog of {options.PriorityJobs} image.embed jobs (70 % low, 20 % normal, 10 % high), one worker; then the same all normal");
        var figure = await PrioritiesAsync(photos).ConfigureAwait(false);
        await WriteFigureAsync("priorities.json", figure).ConfigureAwait(false);
        return figure;
    }
}
