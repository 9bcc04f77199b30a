using System.Text.Json;

namespace Async.Serving.Chaos;

/// <summary>
/// The counts of a run (docs/chaos.md says what each means), the one line that prints them, and the
/// job and webhook ids behind every non-zero failure count (the details file).
/// </summary>
internal sealed class ChaosReport
{
    private readonly Dictionary<string, object> _details = new(StringComparer.Ordinal);

    private ChaosReport()
    {
    }

    public int Jobs { get; private init; }
    public int Accepted { get; private init; }
    public int NotAccepted { get; private init; }
    public int Rejected { get; private init; }
    public int DoubleSubmits { get; private init; }
    public int Succeeded { get; private init; }
    public int Failed { get; private init; }
    public int OtherTerminal { get; private init; }
    public string FailedCodes { get; private init; } = "";
    public int Lost { get; private init; }
    public int Stuck { get; private init; }
    public int NoOutput { get; private init; }
    public int Duplicated { get; private init; }
    public int WebhooksExpected { get; private init; }
    public int WebhooksMissing { get; private init; }
    /// <summary>Of the missing: received once and answered 503 on purpose, but never retried.</summary>
    public int WebhooksRetryPending { get; private init; }
    public int Deliveries { get; private init; }
    public int BadSignatures { get; private init; }
    public int RedeliveredDiffering { get; private init; }
    public string Healthy { get; private init; } = "";
    public string Extra { get; private init; } = "";
    public RateProbeResult? RateProbe { get; private init; }

    /// <summary>Everything that must be zero (and healthy=yes) for the run to pass.</summary>
    public int Failures =>
        NotAccepted + Rejected + DoubleSubmits + Lost + Stuck + NoOutput + Duplicated + WebhooksMissing + BadSignatures + RedeliveredDiffering
        + (Healthy == "yes" ? 0 : 1) + (RateProbe is { Failed: true } ? 1 : 0);

    public string Line =>
        $"chaos: jobs={Jobs} accepted={Accepted} not_accepted={NotAccepted} rejected={Rejected} double_submits={DoubleSubmits} "
        + $"succeeded={Succeeded} failed={Failed} failed_codes={FailedCodes} other_terminal={OtherTerminal} "
        + $"lost={Lost} stuck={Stuck} no_output={NoOutput} duplicated={Duplicated} "
        + $"webhooks_expected={WebhooksExpected} webhooks_missing={WebhooksMissing} webhooks_retry_pending={WebhooksRetryPending} webhook_deliveries={Deliveries} "
        + $"bad_signatures={BadSignatures} redelivered_differing={RedeliveredDiffering} healthy={Healthy} {Extra}"
        + (RateProbe is { } probe ? " " + probe.Text : "");

    public static ChaosReport Build(
        IReadOnlyList<Submitted> submitted, SubmitStats submits, JobChecker checker, SignedWebhookReceiver receiver, IReadOnlyCollection<string> withWebhook,
        RateProbeResult? probe = null, int instances = 1)
    {
        var accepted = submitted.Where(s => s.JobId is not null).Select(s => s.JobId!).ToHashSet(StringComparer.Ordinal);
        var terminals = checker.Terminals;
        var deliveries = receiver.Deliveries.ToArray();
        var completions = deliveries.Where(d => d.Type == "job.completed" && d.JobId is not null && d.SignatureValid).ToLookup(d => d.JobId!, StringComparer.Ordinal);

        var duplicated = new Dictionary<string, string>(checker.Changed, StringComparer.Ordinal);
        foreach (var (id, terminal) in terminals)
        {
            var announced = completions[id].ToArray();
            if (announced.Select(d => d.WebhookId).Distinct(StringComparer.Ordinal).Count() > 1)
            {
                duplicated.TryAdd(id, "job.completed under several webhook ids: " + string.Join(' ', announced.Select(d => d.WebhookId).Distinct(StringComparer.Ordinal)));
            }
            else if (announced.Select(d => (d.Status, d.CompletedAt, d.OutputHash)).Distinct().Count() > 1)
            {
                duplicated.TryAdd(id, "job.completed announced with different content: " + string.Join(" | ", announced.Select(d => $"{d.Status}@{d.CompletedAt:O}")));
            }
            else if (announced.FirstOrDefault(d => d.Status != terminal.Status || d.CompletedAt != terminal.CompletedAt || (d.OutputHash is not null && d.OutputHash != terminal.OutputHash)) is { } other)
            {
                duplicated.TryAdd(id, $"job.completed says {other.Status}@{other.CompletedAt:O}, the job {terminal.Status}@{terminal.CompletedAt:O}");
            }
        }

        var differing = deliveries.GroupBy(d => d.WebhookId, StringComparer.Ordinal)
            .Where(g => g.Select(d => d.BodyHash).Distinct(StringComparer.Ordinal).Count() > 1)
            .Select(g => g.Key)
            .ToArray();
        var badSignatures = deliveries.Where(d => !d.SignatureValid).Select(d => d.WebhookId).ToArray();
        var noOutput = terminals.Where(t => t.Value.Status == "succeeded" && !t.Value.OutputComplete).Select(t => t.Key).ToArray();
        var missing = checker.MissingWebhooks(withWebhook);
        var failedCodes = terminals.Values.Where(t => t.Status == "failed")
            .GroupBy(t => t.ErrorCode ?? "none", StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"{g.Key}:{g.Count()}");
        var notAccepted = submitted.Where(s => s.JobId is null && s.RejectedWith is null).Select(s => s.Key).ToArray();
        var rejected = submitted.Where(s => s.RejectedWith is not null).ToDictionary(s => s.Key, s => s.RejectedWith!, StringComparer.Ordinal);

        var report = new ChaosReport
        {
            Jobs = submitted.Count,
            Accepted = accepted.Count,
            NotAccepted = notAccepted.Length,
            Rejected = rejected.Count,
            DoubleSubmits = checker.DoubleSubmits.Count,
            Succeeded = terminals.Values.Count(t => t.Status == "succeeded"),
            Failed = terminals.Values.Count(t => t.Status == "failed"),
            OtherTerminal = terminals.Values.Count(t => t.Status is not ("succeeded" or "failed")),
            FailedCodes = string.Join(',', failedCodes) is { Length: > 0 } codes ? codes : "none",
            Lost = checker.Lost.Count,
            Stuck = checker.Stuck.Count,
            NoOutput = noOutput.Length,
            Duplicated = duplicated.Count,
            WebhooksExpected = withWebhook.Count,
            WebhooksMissing = missing.Count,
            WebhooksRetryPending = missing.Count(id => completions[id].Any()),
            Deliveries = deliveries.Length,
            BadSignatures = badSignatures.Length,
            RedeliveredDiffering = differing.Length,
            Healthy = checker.Health,
            RateProbe = probe,
            Extra = $"submit_retries={submits.Retries} replayed={submits.Replayed} webhook_ids={deliveries.Select(d => d.WebhookId).Distinct(StringComparer.Ordinal).Count()}"
                + $" max_attempts={(terminals.IsEmpty ? 0 : terminals.Values.Max(t => t.Attempts))}"
                + (instances > 1 ? $" accepted_by_api={string.Join('/', Enumerable.Range(0, instances).Select(i => submitted.Count(s => s.JobId is not null && s.Via == i)))}" : "") + (checker.ListComplete ? "" : " list=incomplete") + (receiver.Unreadable > 0 ? $" unreadable_webhooks={receiver.Unreadable}" : ""),
        };
        report._details["submit_retries_by"] = submits.RetriesText;
        report._details["not_accepted"] = notAccepted;
        report._details["rejected"] = rejected;
        report._details["double_submits"] = checker.DoubleSubmits;
        report._details["lost"] = checker.Lost;
        report._details["stuck"] = checker.Stuck;
        report._details["no_output"] = noOutput;
        report._details["duplicated"] = duplicated;
        report._details["webhooks_missing"] = missing.ToDictionary(
            id => id,
            id => terminals[id].Status + (terminals[id].ErrorCode is { } c ? ":" + c : "")
                + (completions[id].Any() ? $"; received only with answers {string.Join(',', completions[id].Select(d => d.Answered))}, no retry after" : "; never received"),
            StringComparer.Ordinal);
        report._details["bad_signatures"] = badSignatures;
        report._details["redelivered_differing"] = differing;
        report._details["failed"] = terminals.Where(t => t.Value.Status == "failed").ToDictionary(t => t.Key, t => t.Value.ErrorCode ?? "none", StringComparer.Ordinal);
        report._details["attempts"] = terminals.Values.GroupBy(t => t.Attempts).OrderBy(g => g.Key).ToDictionary(g => g.Key.ToString(System.Globalization.CultureInfo.InvariantCulture), g => g.Count());
        return report;
    }

    public void WriteDetails(string path) =>
        File.WriteAllText(path, JsonSerializer.Serialize(_details, new JsonSerializerOptions { WriteIndented = true }));
}
