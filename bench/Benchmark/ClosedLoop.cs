using System.Collections.Concurrent;
using System.Diagnostics;

namespace Async.Serving.Benchmark;

/// <summary>
/// What <see cref="ClosedLoop"/> measured: the latency of every request that succeeded (sorted,
/// milliseconds), the failures by kind, and the wall time from the first request to the last answer.
/// </summary>
internal sealed record ClosedLoopResult(int Requests, int Clients, double[] LatenciesMs, IReadOnlyDictionary<string, int> Failures, double WallSeconds)
{
    public int Succeeded => LatenciesMs.Length;

    public int Failed => Failures.Values.Sum();

    public double PerSecond => Succeeded / Math.Max(0.001, WallSeconds);
}

/// <summary>
/// N clients, each sending its next request when the previous one was answered (a closed loop), until
/// <c>requests</c> have been sent: how a synchronous caller uses a service, whatever the service does inside.
/// </summary>
internal static class ClosedLoop
{
    /// <summary><paramref name="send"/> gets the request's index and returns null on success, else a word for the failure.</summary>
    public static async Task<ClosedLoopResult> RunAsync(int requests, int clients, Func<int, Task<string?>> send)
    {
        var latencies = new ConcurrentBag<double>();
        var failures = new ConcurrentDictionary<string, int>();
        var next = -1;
        async Task ClientAsync()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < requests)
            {
                var began = Stopwatch.GetTimestamp();
                string? failure;
                try
                {
                    failure = await send(i).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or Client.ServingApiException)
                {
                    failure = ex is Client.ServingApiException api ? $"{api.Status}/{api.Code}" : ex.GetType().Name;
                }

                if (failure is null)
                {
                    latencies.Add(Stopwatch.GetElapsedTime(began).TotalMilliseconds);
                }
                else
                {
                    failures.AddOrUpdate(failure, 1, (_, n) => n + 1);
                }
            }
        }

        var started = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(ClientAsync))).ConfigureAwait(false);
        var wall = Stopwatch.GetElapsedTime(started).TotalSeconds;
        return new ClosedLoopResult(requests, clients, [.. latencies.Order()], failures, wall);
    }
}
