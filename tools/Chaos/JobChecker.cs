using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;

namespace Async.Serving.Chaos;

/// <summary>A job as GET /v1/jobs/{id} showed it once it was terminal.</summary>
internal sealed record Terminal(string Status, string? ErrorCode, DateTimeOffset? CompletedAt, int Attempts, string? OutputHash, bool OutputComplete);

/// <summary>
/// After the faults: polls every accepted job until it is terminal (or the deadline), waits for the
/// job.completed webhooks of those that have one, reads every terminal job once more, lists the
/// tenant's jobs to find a second job behind one Idempotency-Key, and checks the API's and the
/// worker's readiness. <see cref="ChaosReport"/> turns what it found into the counts.
/// </summary>
internal sealed class JobChecker(ServingApi api, SignedWebhookReceiver receiver, ChaosOptions options)
{
    private const int Parallelism = 16;

    /// <summary>How long an accepted job may answer 404 before it counts as lost (a store that is still loading its data gets this long).</summary>
    private static readonly TimeSpan LostAfter = TimeSpan.FromSeconds(15);

    private static readonly string[] TerminalStatuses = ["succeeded", "failed", "cancelled", "expired"];

    public ConcurrentDictionary<string, Terminal> Terminals { get; } = new(StringComparer.Ordinal);

    public ConcurrentDictionary<string, string> Lost { get; } = new(StringComparer.Ordinal);

    /// <summary>Jobs not terminal at the deadline, with the status they were last seen in.</summary>
    public ConcurrentDictionary<string, string> Stuck { get; } = new(StringComparer.Ordinal);

    /// <summary>Terminal jobs that read differently the second time (status, completion time or output): completed twice.</summary>
    public ConcurrentDictionary<string, string> Changed { get; } = new(StringComparer.Ordinal);

    /// <summary>Idempotency-Keys of this run behind more than one job.</summary>
    public Dictionary<string, string[]> DoubleSubmits { get; } = new(StringComparer.Ordinal);

    public bool ListComplete { get; private set; }

    public string Health { get; private set; } = "unknown";

    public async Task PollAsync(IReadOnlyCollection<string> ids, CancellationToken cancellationToken)
    {
        var pending = new ConcurrentDictionary<string, string>(ids.Select(id => KeyValuePair.Create(id, "unseen")), StringComparer.Ordinal);
        var missingSince = new ConcurrentDictionary<string, TimeSpan>(StringComparer.Ordinal);
        var clock = Stopwatch.StartNew();
        while (!pending.IsEmpty && clock.Elapsed < options.PollDeadline)
        {
            await Parallel.ForEachAsync(pending.Keys.ToArray(), new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken },
                async (id, token) =>
                {
                    var answer = await api.GetAsync($"/v1/jobs/{id}", token).ConfigureAwait(false);
                    if (answer.Status == 404)
                    {
                        var since = missingSince.GetOrAdd(id, clock.Elapsed);
                        pending[id] = "not_found";
                        if (clock.Elapsed - since >= LostAfter)
                        {
                            Lost[id] = "404";
                            pending.TryRemove(id, out _);
                        }

                        return;
                    }

                    missingSince.TryRemove(id, out _);
                    if (answer.Status != 200 || answer.Body is not { } job)
                    {
                        pending[id] = answer.Reached ? $"http_{answer.Status}" : "unreachable";
                        return;
                    }

                    var status = job.GetProperty("status").GetString() ?? "";
                    if (TerminalStatuses.Contains(status))
                    {
                        Terminals[id] = Read(job);
                        pending.TryRemove(id, out _);
                    }
                    else
                    {
                        pending[id] = status;
                    }
                }).ConfigureAwait(false);
            if (!pending.IsEmpty)
            {
                Progress.Every(TimeSpan.FromSeconds(5), $"poll: {Terminals.Count} terminal, {pending.Count} pending ({Summary(pending.Values)}), {Lost.Count} lost");
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            }
        }

        foreach (var (id, last) in pending)
        {
            if (last == "not_found")
            {
                Lost[id] = "404";
            }
            else
            {
                Stuck[id] = last;
            }
        }
    }

    /// <summary>Waits until every terminal job with a webhook has had a job.completed that the receiver signed off and answered 200, or until the wait is over.</summary>
    public async Task WaitForWebhooksAsync(IReadOnlyCollection<string> withWebhook, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var missing = MissingWebhooks(withWebhook).Count;
            if (missing == 0 || clock.Elapsed >= options.WebhookWait)
            {
                return;
            }

            Progress.Every(TimeSpan.FromSeconds(10), $"webhooks: {missing} terminal jobs still without an accepted job.completed");
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Terminal jobs with a webhook and no job.completed delivery that was signed right and answered 200.</summary>
    public List<string> MissingWebhooks(IReadOnlyCollection<string> withWebhook)
    {
        var delivered = receiver.Deliveries
            .Where(d => d.Type == "job.completed" && d.SignatureValid && d.Answered == 200 && d.JobId is not null)
            .Select(d => d.JobId!)
            .ToHashSet(StringComparer.Ordinal);
        return [.. withWebhook.Where(id => Terminals.ContainsKey(id) && !delivered.Contains(id))];
    }

    /// <summary>Reads every terminal job again: one that changed after it was terminal was completed twice.</summary>
    public async Task RereadAsync(CancellationToken cancellationToken)
    {
        await Parallel.ForEachAsync(Terminals.ToArray(), new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken },
            async (entry, token) =>
            {
                var (id, first) = entry;
                for (var attempt = 0; attempt < 10; attempt++)
                {
                    var answer = await api.GetAsync($"/v1/jobs/{id}", token).ConfigureAwait(false);
                    if (answer.Status == 404)
                    {
                        Lost[id] = "404 after it was terminal";
                        return;
                    }

                    if (answer is { Status: 200, Body: { } job })
                    {
                        var again = Read(job);
                        if (again.Status != first.Status || again.CompletedAt != first.CompletedAt || again.OutputHash != first.OutputHash)
                        {
                            Changed[id] = $"{first.Status}@{first.CompletedAt:O} then {again.Status}@{again.CompletedAt:O}";
                        }

                        return;
                    }

                    await Task.Delay(TimeSpan.FromSeconds(1), token).ConfigureAwait(false);
                }
            }).ConfigureAwait(false);
    }

    /// <summary>Pages through the tenant's jobs; this run's jobs carry their Idempotency-Key in <c>metadata.chaos_key</c>.</summary>
    public async Task ListAsync(string runId, CancellationToken cancellationToken)
    {
        var byKey = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        string? cursor = null;
        var failures = 0;
        while (failures < 30)
        {
            var answer = await api.GetAsync("/v1/jobs?limit=100" + (cursor is null ? "" : $"&cursor={cursor}"), cancellationToken).ConfigureAwait(false);
            if (answer is not { Status: 200, Body: { } page })
            {
                failures++;
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
                continue;
            }

            foreach (var job in page.GetProperty("data").EnumerateArray())
            {
                if (job.TryGetProperty("metadata", out var metadata) && metadata.ValueKind == JsonValueKind.Object
                    && metadata.TryGetProperty("chaos_run", out var run) && run.GetString() == runId
                    && metadata.TryGetProperty("chaos_key", out var key) && key.GetString() is { } k)
                {
                    if (!byKey.TryGetValue(k, out var jobIds))
                    {
                        byKey[k] = jobIds = new HashSet<string>(StringComparer.Ordinal);
                    }

                    jobIds.Add(job.GetProperty("id").GetString()!);
                }
            }

            cursor = page.TryGetProperty("next_cursor", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
            if (cursor is null)
            {
                ListComplete = true;
                break;
            }
        }

        foreach (var (key, jobIds) in byKey.Where(k => k.Value.Count > 1))
        {
            DoubleSubmits[key] = [.. jobIds];
        }
    }

    /// <summary>Every API instance's and (when given) every worker's /readyz, given up to 30 s to answer 200.</summary>
    public async Task CheckHealthAsync(CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var apiStatus = new List<int>();
            foreach (var url in options.ApiUrls)
            {
                apiStatus.Add(await api.StatusOfAsync(new Uri(url, "/readyz"), cancellationToken).ConfigureAwait(false));
            }

            var workerStatus = new List<int>();
            foreach (var worker in options.WorkerUrls)
            {
                workerStatus.Add(await api.StatusOfAsync(new Uri(worker, "/readyz"), cancellationToken).ConfigureAwait(false));
            }

            if (apiStatus.All(s => s == 200) && workerStatus.All(s => s == 200))
            {
                Health = "yes";
                return;
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(30))
            {
                Health = $"no(api={string.Join('/', apiStatus)},worker={string.Join('/', workerStatus)})";
                return;
            }

            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
        }
    }

    private static Terminal Read(JsonElement job)
    {
        var output = job.TryGetProperty("output", out var o) ? o : default;
        var complete = output.ValueKind == JsonValueKind.Object
            && output.TryGetProperty("embedding", out var embedding) && embedding.ValueKind == JsonValueKind.Array
            && output.TryGetProperty("dims", out var dims) && dims.TryGetInt32(out var n) && n > 0 && embedding.GetArrayLength() == n;
        return new Terminal(
            job.GetProperty("status").GetString()!,
            job.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object ? error.GetProperty("code").GetString() : null,
            job.TryGetProperty("completed_at", out var at) && at.ValueKind == JsonValueKind.String ? at.GetDateTimeOffset() : null,
            job.TryGetProperty("attempts", out var attempts) ? attempts.GetInt32() : 0,
            output.ValueKind == JsonValueKind.Undefined ? null : SignedWebhookReceiver.HashOf(output),
            complete);
    }

    private static string Summary(IEnumerable<string> states) =>
        string.Join(", ", states.GroupBy(s => s, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"));
}
