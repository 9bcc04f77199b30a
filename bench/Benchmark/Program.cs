namespace Async.Serving.Benchmark;

/// <summary>
/// The performance figures of docs/benchmarks.md (DESIGN.md section 5), measured in one run against
/// the real services on this machine. Run through scripts/bench.sh, which starts what it needs.
/// </summary>
internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        var options = BenchOptions.Parse(args);
        Console.WriteLine($"Async.Serving benchmark: {Environment.ProcessorCount} cores, load average {Machine.LoadAverage}");
        Console.WriteLine($"N: ResNet e2e {options.ResNetJobs} jobs per run, trivial {options.TrivialJobs} jobs, queued {options.QueuedJobs} jobs, {options.Concurrency} concurrent clients, in-process {options.InProcessImages} images per batch size, OCR {options.OcrJobs} jobs, video {options.VideoJobs} jobs at {options.VideoFps} fps");
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var run = new BenchRun(options);
        if (options.Only is { } only)
        {
            if (only is not ("priorities" or "blobs"))
            {
                throw new ArgumentException($"--only {only}: only 'priorities' or 'blobs' can run alone.");
            }

            await using (run.ConfigureAwait(false))
            {
                if (only == "blobs")
                {
                    await run.RunBlobsOnlyAsync().ConfigureAwait(false);
                }
                else
                {
                    await run.RunPrioritiesOnlyAsync().ConfigureAwait(false);
                }
            }

            Console.WriteLine($"benchmark took {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds:F0} s");
            return 0;
        }

        await using (run.ConfigureAwait(false))
        {
            var summary = await run.RunAsync().ConfigureAwait(false);
            Report.Write(summary, options.OutDir);
            Report.Print(summary);
        }

        Console.WriteLine($"benchmark took {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds:F0} s");
        return 0;
    }
}
