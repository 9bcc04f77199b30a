namespace Async.Serving.Benchmark;

/// <summary>
/// The performance figures of docs/benchmarks.md (DESIGN.md section 5), measured in one run against
/// the real services on this machine. Run through scripts/bench.sh, which starts what it needs;
/// <c>--only device</c> (scripts/gpu-kit.sh) needs nothing but a model repository.
/// </summary>
internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        var options = BenchOptions.Parse(args);
        Console.WriteLine($"Async.Serving benchmark: {Environment.ProcessorCount} cores, load average {Machine.LoadAverage}");
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        switch (options.Only)
        {
            case null:
                Console.WriteLine($"N: ResNet e2e {options.ResNetJobs} jobs per run, trivial {options.TrivialJobs} jobs, queued {options.QueuedJobs} jobs, {options.Concurrency} concurrent clients, in-process {options.InProcessImages} images per batch size, OCR {options.OcrJobs} jobs, video {options.VideoJobs} jobs at {options.VideoFps} fps, baseline {options.BaselineJobs} requests per level");
                var run = new BenchRun(options);
                await using (run.ConfigureAwait(false))
                {
                    var summary = await run.RunAsync().ConfigureAwait(false);
                    Report.Write(summary, options.OutDir);
                    Report.Print(summary);
                }

                break;
            case "priorities" or "baseline" or "orchestration":
                var step = new BenchRun(options);
                await using (step.ConfigureAwait(false))
                {
                    Task ran = options.Only switch
                    {
                        "priorities" => step.RunPrioritiesOnlyAsync(),
                        "orchestration" => step.RunOrchestrationOnlyAsync(),
                        _ => step.RunBaselineOnlyAsync(),
                    };
                    await ran.ConfigureAwait(false);
                }

                break;
            case "device":
                DeviceBench.Run(options);
                break;
            case "preprocess":
                PreprocessStep.Run(options);
                break;
            case "blobs":
                var blobs = new BenchRun(options);
                await using (blobs.ConfigureAwait(false))
                {
                    await blobs.RunBlobsOnlyAsync().ConfigureAwait(false);
                }

                break;
            default:
                throw new ArgumentException($"--only {options.Only}: 'priorities', 'orchestration', 'baseline', 'device', 'preprocess' or 'blobs'.");
        }

        Console.WriteLine($"benchmark took {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds:F0} s");
        return 0;
    }
}
