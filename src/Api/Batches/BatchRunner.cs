using System.Globalization;
using System.Text.Json;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Jobs;
using Async.Serving.Jobs;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Batches;

/// <summary>
/// The Hangfire side of batches. A batch's lines become jobs in chunks of
/// <see cref="BatchOptions.ChunkSize"/>, one Hangfire job each, a chunk enqueuing the next when it is
/// done: each line is read like the body of <c>POST /v1/jobs</c> (<see cref="SubmissionReader"/>) and
/// submitted through <see cref="JobIntake"/> with the <c>Idempotency-Key</c> <c>{batch id}:{line}</c>,
/// so a chunk run twice (a Hangfire retry, a crash after the submit and before the line recorded its
/// job) gets the same job back and never makes a second. A line that is refused becomes an error of
/// that line; a refusal that passes by itself (<c>queue_full</c>, <c>broker_unavailable</c>) makes the
/// chunk try again later instead, at most <see cref="BatchOptions.MaxRetries"/> times.
/// </summary>
internal sealed partial class BatchRunner(
    BatchStore store,
    SubmissionReader reader,
    JobIntake intake,
    RedisJobStore jobs,
    BatchCompletion completion,
    IBackgroundJobClient hangfire,
    IOptions<BatchOptions> options,
    TimeProvider clock,
    ILogger<BatchRunner> logger)
{
    /// <summary>Jobs read or cancelled per round trip when a batch is cancelled or reconciled.</summary>
    private const int PageSize = 500;

    /// <summary>The <c>Idempotency-Key</c> of a line's job: the same for every run of its chunk.</summary>
    public static string IdempotencyKey(string batchId, int line) => $"{batchId}:{line.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Enqueues the first chunk of a new batch.</summary>
    public static string Enqueue(IBackgroundJobClient hangfire, string batchId)
    {
        ArgumentNullException.ThrowIfNull(hangfire);
        return hangfire.Enqueue<BatchRunner>(r => r.RunChunkAsync(batchId, 0, 0, CancellationToken.None));
    }

    /// <summary>
    /// Makes jobs of the pending lines among the <see cref="BatchOptions.ChunkSize"/> lines after
    /// <paramref name="afterLine"/>, then enqueues the next chunk. <paramref name="attempt"/> counts the
    /// tries after a full queue. Platform failures (Redis, PostgreSQL) throw: Hangfire runs it again.
    /// </summary>
    [AutomaticRetry(Attempts = 10, DelaysInSeconds = new[] { 5, 15, 30, 60, 120, 300 })]
    [JobDisplayName("Batch {0}: lines after {1} (try {2})")]
    public async Task<string> RunChunkAsync(string batchId, int afterLine, int attempt, CancellationToken cancellationToken)
    {
        if (await store.HeadAsync(batchId, cancellationToken).ConfigureAwait(false) is not var (tenantId, status))
        {
            return "The batch no longer exists.";
        }

        if (status == BatchStatuses.Validating)
        {
            await store.StartAsync(batchId, cancellationToken).ConfigureAwait(false);
        }
        else if (status is BatchStatuses.Cancelling or BatchStatuses.Cancelled or BatchStatuses.Completed)
        {
            return await StopAsync(batchId, status, cancellationToken).ConfigureAwait(false);
        }

        var o = options.Value;
        var lines = await store.ChunkAsync(batchId, afterLine, o.ChunkSize, cancellationToken).ConfigureAwait(false);
        var made = new List<string>(lines.Count);
        int created = 0, errored = 0;
        try
        {
            foreach (var (line, pending) in lines)
            {
                if (!pending || await store.PendingBodyAsync(batchId, line, cancellationToken).ConfigureAwait(false) is not { } body)
                {
                    continue;
                }

                var outcome = await SubmitLineAsync(batchId, tenantId, line, body, cancellationToken).ConfigureAwait(false);
                if (outcome is LineOutcome.Busy busy)
                {
                    if (attempt < o.MaxRetries)
                    {
                        var delay = TimeSpan.FromSeconds(Math.Max(o.RetryDelay.TotalSeconds, busy.RetryAfterSeconds ?? 0));
                        hangfire.Schedule<BatchRunner>(r => r.RunChunkAsync(batchId, afterLine, attempt + 1, CancellationToken.None), delay);
                        LogRetrying(logger, batchId, line, busy.Code, delay.TotalSeconds, attempt + 1);
                        return $"Line {line} refused ({busy.Code}); the chunk tries again in {delay.TotalSeconds:0.#} s.";
                    }

                    outcome = new LineOutcome.Error(busy.Code, busy.Message);
                }

                switch (outcome)
                {
                    case LineOutcome.Job job:
                        made.Add(job.JobId);
                        created++;
                        var (lineStatus, batchStatus) = await store.RecordJobAsync(batchId, line, job.JobId, cancellationToken).ConfigureAwait(false);
                        status = batchStatus;
                        if (lineStatus == JobStatuses.Cancelled || batchStatus is BatchStatuses.Cancelling or BatchStatuses.Cancelled)
                        {
                            // Made while the batch was being cancelled: the cancel may not have seen it.
                            await jobs.CancelAsync(job.JobId).ConfigureAwait(false);
                        }

                        break;
                    case LineOutcome.Error error:
                        errored++;
                        status = await store.RecordErrorAsync(batchId, line, error.Code, error.Message, cancellationToken).ConfigureAwait(false);
                        break;
                }

                if (status is BatchStatuses.Cancelling or BatchStatuses.Cancelled)
                {
                    return await StopAsync(batchId, status, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            // A job that ended before its line named it: its ledger entry found no line to move.
            await ApplyCurrentStatusesAsync(made, CancellationToken.None).ConfigureAwait(false);
        }

        if (lines.Count == o.ChunkSize)
        {
            var last = lines[^1].Line;
            hangfire.Enqueue<BatchRunner>(r => r.RunChunkAsync(batchId, last, 0, CancellationToken.None));
        }

        await completion.CheckAsync([batchId], cancellationToken).ConfigureAwait(false);
        LogChunk(logger, batchId, afterLine, created, errored);
        return $"{created} jobs made, {errored} lines errored.";
    }

    private async Task<string> StopAsync(string batchId, string status, CancellationToken cancellationToken)
    {
        if (status != BatchStatuses.Completed)
        {
            await store.CancelPendingAsync(batchId, cancellationToken).ConfigureAwait(false);
            await completion.CheckAsync([batchId], cancellationToken).ConfigureAwait(false);
        }

        return $"The batch is {status}: no more jobs are made.";
    }

    /// <summary>One line as a job: its job, the error it is answered with, or a refusal that may pass (the chunk waits).</summary>
    private async Task<LineOutcome> SubmitLineAsync(string batchId, string tenantId, int line, byte[] body, CancellationToken cancellationToken)
    {
        SubmitRequest? request;
        try
        {
            request = JsonSerializer.Deserialize<SubmitRequest>(body, reader.JsonOptions);
        }
        catch (JsonException ex)
        {
            var field = ex.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal) ? $" ({path[2..]})" : string.Empty;
            return new LineOutcome.Error(ApiProblems.InputInvalid, $"The line could not be read as a job{field}: {ex.Message}");
        }

        if (request is null)
        {
            return new LineOutcome.Error(ApiProblems.InputInvalid, "The line is not a job.");
        }

        var (submission, problem) = await reader.ReadAsync(request, body, cancellationToken).ConfigureAwait(false);
        if (problem is not null)
        {
            return Refusal(problem, null);
        }

        return await intake.SubmitAsync(submission!, tenantId, IdempotencyKey(batchId, line), cancellationToken).ConfigureAwait(false) switch
        {
            SubmitOutcome.Created created => new LineOutcome.Job(created.Job.Id),
            SubmitOutcome.Replayed replayed => new LineOutcome.Job(replayed.Job.Id),
            SubmitOutcome.Refused refused => Refusal(refused.Problem, refused.RetryAfterSeconds),
            _ => throw new System.Diagnostics.UnreachableException(),
        };
    }

    private static LineOutcome Refusal(ProblemHttpResult problem, int? retryAfter)
    {
        var details = problem.ProblemDetails;
        var code = details.Extensions.TryGetValue("code", out var c) && c is string s ? s : ApiProblems.InputInvalid;
        var message = details.Detail ?? details.Title ?? code;
        if (details.Extensions.TryGetValue("errors", out var e) && e is IDictionary<string, string[]> errors && errors.Count > 0)
        {
            message += " " + string.Join("; ", errors.Select(kv => $"{kv.Key}: {string.Join(' ', kv.Value)}"));
        }

        // A full queue, a broker away, or the line's own key held by a concurrent run of this chunk: later.
        return code is ApiProblems.QueueFull or ApiProblems.BrokerUnavailable or ApiProblems.Conflict
            ? new LineOutcome.Busy(code, message, retryAfter)
            : new LineOutcome.Error(code, message);
    }

    /// <summary>
    /// Cancels a batch: no more lines become jobs, pending lines are <c>cancelled</c>, and every queued
    /// or running job of it is cancelled through the job store (queued ones end at once, running ones
    /// when their worker stops them). Null when the tenant has no such batch; else its status before.
    /// </summary>
    public async Task<string?> CancelAsync(string batchId, string tenantId, CancellationToken cancellationToken)
    {
        var before = await store.BeginCancelAsync(batchId, tenantId, cancellationToken).ConfigureAwait(false);
        if (before is null or BatchStatuses.Completed or BatchStatuses.Cancelled)
        {
            return before;
        }

        var after = 0;
        while (await store.LiveJobsAsync(batchId, after, PageSize, cancellationToken).ConfigureAwait(false) is { Count: > 0 } page)
        {
            // One pipelined round of cancels per page, not a round trip per job.
            await Task.WhenAll(page.Select(j => jobs.CancelAsync(j.JobId))).ConfigureAwait(false);
            await ApplyCurrentStatusesAsync([.. page.Select(j => j.JobId)], cancellationToken).ConfigureAwait(false);
            after = page[^1].Line;
        }

        await completion.CheckAsync([batchId], cancellationToken).ConfigureAwait(false);
        LogCancelled(logger, batchId);
        return before;
    }

    /// <summary>
    /// Every minute: starts batches whose first chunk was never enqueued, brings the lines of running
    /// batches up to their jobs' states (should the ledger writer have skipped an entry, or not run),
    /// ends the batches that are done, and enqueues the webhooks that a stopped process did not.
    /// </summary>
    [AutomaticRetry(Attempts = 0)]
    [JobDisplayName("Batches: sweep")]
    public async Task SweepAsync(CancellationToken cancellationToken)
    {
        var minuteAgo = clock.GetUtcNow().AddMinutes(-1);
        foreach (var id in await store.StalledAsync(minuteAgo, cancellationToken).ConfigureAwait(false))
        {
            Enqueue(hangfire, id);
        }

        var live = await store.LiveAsync(cancellationToken).ConfigureAwait(false);
        foreach (var id in live)
        {
            var after = 0;
            while (await store.LiveJobsAsync(id, after, PageSize, cancellationToken).ConfigureAwait(false) is { Count: > 0 } page)
            {
                await ApplyCurrentStatusesAsync([.. page.Select(j => j.JobId)], cancellationToken).ConfigureAwait(false);
                after = page[^1].Line;
            }
        }

        await completion.CheckAsync(live, cancellationToken).ConfigureAwait(false);
        foreach (var batch in await store.UnannouncedAsync(minuteAgo, cancellationToken).ConfigureAwait(false))
        {
            await completion.AnnounceAsync(batch, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The lines of these jobs take the jobs' states as the job store has them now; a job gone from it (its retention passed) counts as expired.</summary>
    private async Task ApplyCurrentStatusesAsync(IReadOnlyList<string> jobIds, CancellationToken cancellationToken)
    {
        if (jobIds.Count == 0)
        {
            return;
        }

        var records = await Task.WhenAll(jobIds.Select(id => jobs.GetAsync(id, includeOutput: false))).ConfigureAwait(false);
        var states = jobIds.Zip(records, (id, job) => (id, job?.Status ?? JobStatuses.Expired)).ToList();
        var ended = await store.ApplyJobStatusesAsync(states, cancellationToken).ConfigureAwait(false);
        await completion.CheckAsync(ended, cancellationToken).ConfigureAwait(false);
    }

    private abstract record LineOutcome
    {
        public sealed record Job(string JobId) : LineOutcome;

        public sealed record Error(string Code, string Message) : LineOutcome;

        public sealed record Busy(string Code, string Message, int? RetryAfterSeconds) : LineOutcome;
    }

    [LoggerMessage(EventId = 872, Level = LogLevel.Debug, Message = "Batch {BatchId}: chunk after line {AfterLine} made {Created} jobs, {Errored} lines errored")]
    private static partial void LogChunk(ILogger logger, string batchId, int afterLine, int created, int errored);

    [LoggerMessage(EventId = 873, Level = LogLevel.Warning, Message = "Batch {BatchId}: line {Line} refused ({Code}); chunk retried in {Seconds:F0} s (try {Attempt})")]
    private static partial void LogRetrying(ILogger logger, string batchId, int line, string code, double seconds, int attempt);

    [LoggerMessage(EventId = 874, Level = LogLevel.Information, Message = "Batch {BatchId} cancelled by its tenant")]
    private static partial void LogCancelled(ILogger logger, string batchId);
}
