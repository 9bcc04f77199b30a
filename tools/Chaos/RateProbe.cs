using System.Diagnostics;

namespace Async.Serving.Chaos;

/// <summary>What the rate-limit probe saw: requests sent, admitted (200, per API instance), refused with a well-formed 429, anything else.</summary>
internal sealed record RateProbeResult(int Sent, int[] AdmittedBy, int Limited, int Other, int BadRefusals, TimeSpan Elapsed, int Bound)
{
    public int Admitted => AdmittedBy.Sum();

    /// <summary>The instances together admitted more than one bucket holds (per-process buckets), none at all, or refused badly.</summary>
    public bool Failed => Admitted > Bound || Admitted == 0 || Other > 0 || BadRefusals > 0;

    public string Text =>
        $"rate_probe_sent={Sent} rate_admitted={Admitted}({string.Join('+', AdmittedBy)}) rate_bound={Bound} rate_limited={Limited} rate_other={Other} rate_bad_refusals={BadRefusals}";
}

/// <summary>
/// Before the submits: one key's requests, all at once and spread over every API instance, must be
/// admitted from one bucket for the whole fleet: at most its burst plus what it refills while they run
/// (per-process buckets would admit up to that many times the instances). Each refusal must be a 429
/// <c>rate_limited</c> problem with a <c>Retry-After</c>. Afterwards it waits until the bucket is full again.
/// </summary>
internal static class RateProbe
{
    private const int Parallelism = 64;

    public static async Task<RateProbeResult> RunAsync(ServingApi api, ChaosOptions options, CancellationToken cancellationToken)
    {
        var admitted = new int[api.Instances];
        int limited = 0, other = 0, bad = 0;
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, options.RateProbeRequests),
            new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken },
            async (i, token) =>
            {
                var answer = await api.GetOnceAsync("/v1/models", i, token).ConfigureAwait(false);
                switch (answer.Status)
                {
                    case 200:
                        Interlocked.Increment(ref admitted[answer.Via]);
                        break;
                    case 429:
                        Interlocked.Increment(ref limited);
                        if (answer.ProblemCode != "rate_limited" || answer.RetryAfter is not { } wait || wait < TimeSpan.FromSeconds(1))
                        {
                            Interlocked.Increment(ref bad);
                        }

                        break;
                    default:
                        Interlocked.Increment(ref other);
                        break;
                }
            }).ConfigureAwait(false);
        var elapsed = clock.Elapsed;
        // The burst, plus a refill for every second begun while they ran and one more for a request
        // that took its token before a refill and was answered after it.
        var bound = options.RateBurst + options.RatePerSecond * ((int)Math.Ceiling(elapsed.TotalSeconds) + 1);
        var result = new RateProbeResult(options.RateProbeRequests, admitted, limited, other, bad, elapsed, bound);
        Progress.Say($"rate probe: {result.Text} in {elapsed.TotalSeconds:F1} s");
        var refill = TimeSpan.FromSeconds(Math.Ceiling((double)options.RateBurst / options.RatePerSecond) + 1);
        await Task.Delay(refill, cancellationToken).ConfigureAwait(false);
        return result;
    }
}
