using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Async.Serving.Benchmark;

internal sealed partial class BenchRun
{
    /// <summary>
    /// <c>--only orchestration</c>: the API and step 3 alone (trivial model), written to
    /// <c>orchestration.json</c>. With <c>--trace-seconds S</c>, <c>dotnet-trace</c> (the repository's
    /// tool manifest) samples the API and the worker for S seconds from the start of the timed load,
    /// into <c>trace-api.nettrace</c> and <c>trace-worker.nettrace</c>; a traced run's figures are
    /// slowed by the tracing and are not the step's figures.
    /// </summary>
    public async Task<EndToEndFigure> RunOrchestrationOnlyAsync()
    {
        await StartAloneAsync().ConfigureAwait(false);
        var pngs = BenchImages.TinyPngs(16);
        Console.WriteLine($"3. orchestration-bound, trivial model: {options.TrivialJobs} jobs, {options.Concurrency} clients");
        var figure = await EndToEndAsync(BenchRepository.Trivial, pngs, "image/png", options.TrivialJobs, warmUp: options.WarmUpJobs,
            options.TraceSeconds > 0 ? StartTracesAsync : null).ConfigureAwait(false);
        await WriteFigureAsync("orchestration.json", figure).ConfigureAwait(false);
        return figure;
    }

    /// <summary>Starts a CPU-sampling <c>dotnet-trace</c> of the API and of the worker; the returned step waits for both to finish writing.</summary>
    private Task<Func<Task>> StartTracesAsync(ServingProcess worker)
    {
        var duration = TimeSpan.FromSeconds(options.TraceSeconds).ToString(@"dd\:hh\:mm\:ss", CultureInfo.InvariantCulture);
        var traces = new[] { ("api", _api!.Pid), ("worker", worker.Pid) }.Select(target =>
        {
            var info = new ProcessStartInfo("dotnet") { WorkingDirectory = options.Root, UseShellExecute = false, RedirectStandardOutput = true };
            foreach (var arg in new[]
            {
                "tool", "run", "dotnet-trace", "collect", "-p", target.Pid.ToString(CultureInfo.InvariantCulture), "--profile", "dotnet-sampled-thread-time",
                "--duration", duration, "-o", Path.Combine(options.OutDir, $"trace-{target.Item1}.nettrace"),
            })
            {
                info.ArgumentList.Add(arg);
            }

            var process = Process.Start(info)!;
            _ = process.StandardOutput.ReadToEndAsync();
            return process;
        }).ToList();
        Console.WriteLine($"  tracing the API and the worker for {options.TraceSeconds} s (dotnet-trace, pids {string.Join(", ", traces.Select(t => t.Id))})");
        Func<Task> ended = async () =>
        {
            foreach (var trace in traces)
            {
                await trace.WaitForExitAsync().ConfigureAwait(false);
                trace.Dispose();
            }
        };
        return Task.FromResult(ended);
    }
}
