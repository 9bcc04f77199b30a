using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Async.Serving.Fixtures;

namespace Async.Serving.Chaos;

/// <summary>One job as the client submitted it: its key, whether it has a webhook, and the ticket it got (if any).</summary>
/// <summary>One job as the client submitted it: its key, whether it has a webhook, the ticket it got (if any) and the API instance that gave it.</summary>
internal sealed record Submitted(int Index, string Key, bool Webhook, string? JobId, int Attempts, string? RejectedWith, int Via = 0);

/// <summary>What the submits went through, for the summary: retries by reason and replayed answers.</summary>
internal sealed class SubmitStats
{
    public ConcurrentDictionary<string, int> RetriesBy { get; } = new(StringComparer.Ordinal);

    public int Replayed;

    public int Retries => RetriesBy.Values.Sum();

    public string RetriesText => RetriesBy.IsEmpty ? "none" : string.Join(',', RetriesBy.OrderBy(r => r.Key, StringComparer.Ordinal).Select(r => $"{r.Key}:{r.Value}"));
}

/// <summary>
/// Submits the jobs: spread evenly over <see cref="ChaosOptions.SubmitSpread"/>, at most
/// <see cref="ChaosOptions.Concurrency"/> at once, every <see cref="ChaosOptions.WebhookEvery"/>th one
/// with a <c>completed</c> webhook, each job to the API instances in turn (its retries too).
/// Each job has its own small real image and an Idempotency-Key, and is retried with that key on 429,
/// 5xx and when the API cannot be reached, until it gets a ticket or <see cref="ChaosOptions.SubmitGiveUp"/>.
/// </summary>
internal sealed class JobSubmitter(ServingApi api, SignedWebhookReceiver receiver, ChaosOptions options, string runId)
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(4);

    public SubmitStats Stats { get; } = new();

    private int _done;

    public int Done => _done;

    public async Task<IReadOnlyList<Submitted>> RunAsync(CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var spacing = options.SubmitSpread / options.Jobs;
        using var gate = new SemaphoreSlim(options.Concurrency);
        var tasks = new List<Task<Submitted>>(options.Jobs);
        for (var i = 0; i < options.Jobs; i++)
        {
            var due = spacing * i - clock.Elapsed;
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due, cancellationToken).ConfigureAwait(false);
            }

            await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            tasks.Add(SubmitOneAsync(i, gate, cancellationToken));
        }

        return await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    private async Task<Submitted> SubmitOneAsync(int index, SemaphoreSlim gate, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Yield();
            var key = $"chaos-{runId}-{index}";
            var webhook = index % options.WebhookEvery == 0;
            var body = Body(index, key, webhook);
            var clock = Stopwatch.StartNew();
            var backoff = TimeSpan.FromMilliseconds(250);
            for (var attempt = 1; ; attempt++)
            {
                var answer = await api.SubmitAsync(body, key, index + attempt - 1, cancellationToken).ConfigureAwait(false);
                if (answer.Status is 200 or 202 && answer.Body is { } job && job.TryGetProperty("id", out var id))
                {
                    if (answer.Replayed)
                    {
                        Interlocked.Increment(ref Stats.Replayed);
                    }

                    return new Submitted(index, key, webhook, id.GetString(), attempt, null, answer.Via);
                }

                var reason = answer.Status switch
                {
                    0 => "unreachable",
                    429 or >= 500 => $"{answer.Status}" + (answer.ProblemCode is { } code ? $"_{code}" : ""),
                    // The key is still held by an earlier attempt of this submit (one the client gave up on
                    // while the API waited for the broker): the API says when to ask again.
                    409 when answer.RetryAfter is not null => "409_key_in_use",
                    _ => null,
                };
                if (reason is null)
                {
                    // A refusal that a retry will not change (400, 401, 422 idempotency_mismatch …): a finding.
                    return new Submitted(index, key, webhook, null, attempt, $"{answer.Status}_{answer.ProblemCode ?? "?"}");
                }

                Stats.RetriesBy.AddOrUpdate(reason, 1, (_, n) => n + 1);
                if (clock.Elapsed > options.SubmitGiveUp)
                {
                    return new Submitted(index, key, webhook, null, attempt, null);
                }

                var wait = answer.RetryAfter is { } retryAfter && retryAfter < MaxBackoff ? retryAfter : backoff;
                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            }
        }
        finally
        {
            Interlocked.Increment(ref _done);
            gate.Release();
        }
    }

    /// <summary>The same bytes on every retry: the API fingerprints the body behind an Idempotency-Key.</summary>
    private byte[] Body(int index, string key, bool webhook)
    {
        var image = SceneImages.Scene(index + 1, 96, 72, quality: 85);
        var request = new Dictionary<string, object>
        {
            ["pipeline"] = "image.embed",
            ["model"] = options.Model,
            ["input"] = new Dictionary<string, string> { ["base64"] = Convert.ToBase64String(image) },
            ["metadata"] = new Dictionary<string, string> { ["chaos_run"] = runId, ["chaos_key"] = key },
        };
        if (webhook)
        {
            request["webhook"] = new Dictionary<string, object> { ["url"] = receiver.UrlFor(index), ["events"] = new[] { "completed" } };
        }

        return JsonSerializer.SerializeToUtf8Bytes(request);
    }
}
