using System.Diagnostics;
using System.Text.Json;

namespace Async.Serving.Chaos;

/// <summary>
/// The client side of the fault suite (scripts/chaos.sh, docs/chaos.md): submits jobs while the
/// script breaks the stack, then checks that every accepted job ended exactly once, with its output
/// and its webhook, and prints one line of counts. Exit code 0 only when every failure count is 0.
/// Also the driver of the multi-host check (scripts/multihost.sh): several API instances, and a probe
/// of the rate limit they share.
/// </summary>
internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        var options = ChaosOptions.Parse(args);
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        var cancellationToken = stop.Token;

        var receiver = await SignedWebhookReceiver.StartAsync(options.FailFirstPercent, options.ReceiverHost, cancellationToken).ConfigureAwait(false);
        await using (receiver.ConfigureAwait(false))
        {
            using var api = new ServingApi(options.ApiUrls, options.ApiKey);
            receiver.UseSecret(await SecretAsync(api, cancellationToken).ConfigureAwait(false));
            var probe = options.RateProbeRequests > 0 ? await RateProbe.RunAsync(api, options, cancellationToken).ConfigureAwait(false) : null;
            var runId = Guid.NewGuid().ToString("N")[..12];
            Progress.Say($"run {runId}: receiver on {receiver.BaseAddress}, {options.Jobs} jobs over {options.SubmitSpread.TotalSeconds:F0} s, {options.Concurrency} at once");
            if (options.ReadyFile is { } ready)
            {
                await File.WriteAllTextAsync(ready, runId, cancellationToken).ConfigureAwait(false);
            }

            var submitter = new JobSubmitter(api, receiver, options, runId);
            var submitting = submitter.RunAsync(cancellationToken);
            while (await Task.WhenAny(submitting, Task.Delay(TimeSpan.FromSeconds(5), cancellationToken)).ConfigureAwait(false) != submitting)
            {
                Progress.Say($"submit: {submitter.Done} of {options.Jobs} done, retries {submitter.Stats.RetriesText}, {receiver.Deliveries.Count} webhook deliveries");
            }

            var submitted = await submitting.ConfigureAwait(false);
            Progress.Say($"submit: finished; {submitted.Count(s => s.JobId is not null)} accepted, retries {submitter.Stats.RetriesText}");
            await WaitForFaultsAsync(options, cancellationToken).ConfigureAwait(false);
            Progress.Say($"settling {options.Settle.TotalSeconds:F0} s");
            await Task.Delay(options.Settle, cancellationToken).ConfigureAwait(false);

            var accepted = submitted.Where(s => s.JobId is not null).Select(s => s.JobId!).Distinct(StringComparer.Ordinal).ToArray();
            if (options.AcceptedFile is { } acceptedFile)
            {
                await File.WriteAllLinesAsync(acceptedFile, accepted, cancellationToken).ConfigureAwait(false);
            }

            var withWebhook = submitted.Where(s => s.JobId is not null && s.Webhook).Select(s => s.JobId!).Distinct(StringComparer.Ordinal).ToArray();
            var checker = new JobChecker(api, receiver, options);
            await checker.PollAsync(accepted, cancellationToken).ConfigureAwait(false);
            await checker.WaitForWebhooksAsync(withWebhook, cancellationToken).ConfigureAwait(false);
            // Late copies (a retry already scheduled, a redelivered event) still count: give them a moment.
            await Task.Delay(TimeSpan.FromSeconds(3), cancellationToken).ConfigureAwait(false);
            await checker.RereadAsync(cancellationToken).ConfigureAwait(false);
            await checker.ListAsync(runId, cancellationToken).ConfigureAwait(false);
            await checker.CheckHealthAsync(cancellationToken).ConfigureAwait(false);

            var report = ChaosReport.Build(submitted, submitter.Stats, checker, receiver, withWebhook, probe, api.Instances);
            if (options.DetailsFile is { } details)
            {
                report.WriteDetails(details);
            }

            Console.WriteLine(report.Line);
            return report.Failures == 0 ? 0 : 1;
        }
    }

    /// <summary>The tenant's signing secret; the API must be up for it, and the script has just started it.</summary>
    private static async Task<string> SecretAsync(ServingApi api, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var answer = await api.GetAsync("/v1/webhooks/secret", cancellationToken).ConfigureAwait(false);
            if (answer is { Status: 200, Body: { } body } && body.TryGetProperty("secret", out var secret) && secret.ValueKind == JsonValueKind.String)
            {
                return secret.GetString()!;
            }

            if (clock.Elapsed > TimeSpan.FromMinutes(2))
            {
                throw new InvalidOperationException($"GET /v1/webhooks/secret answered {answer.Status} for 2 minutes.");
            }

            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task WaitForFaultsAsync(ChaosOptions options, CancellationToken cancellationToken)
    {
        if (options.FaultsDoneFile is not { } done)
        {
            return;
        }

        var clock = Stopwatch.StartNew();
        while (!File.Exists(done))
        {
            if (clock.Elapsed > options.FaultsWait)
            {
                throw new TimeoutException($"{done} did not appear within {options.FaultsWait.TotalMinutes:F0} minutes.");
            }

            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
        }

        Progress.Say("faults over");
    }
}
