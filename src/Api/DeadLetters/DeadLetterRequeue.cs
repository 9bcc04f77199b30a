using System.Text.Json;
using Async.Serving.Contracts;
using Async.Serving.Jobs;
using Async.Serving.Api.Jobs;

namespace Async.Serving.Api.DeadLetters;

/// <summary>
/// An operator's second chance for a dead-lettered job: the job goes back to <c>queued</c> (a new
/// round: attempts from 0, its next ending a new webhook event) and its kept message is sent to its
/// model's queue again, without the TTL it had (it already waited once): the queue it came from,
/// which is its priority's lane (<c>infer-…-1.high_error</c> goes back to <c>infer-…-1.high</c>). Only while its input is
/// still stored; a message that never deserialized cannot be sent again.
/// </summary>
internal sealed partial class DeadLetterRequeue(
    DeadLetterStore deadLetters, RedisJobStore store, JobSender sender, TimeProvider clock, ILogger<DeadLetterRequeue> logger)
{
    /// <summary>What happened, in words for the dashboard; <c>Requeued</c> true when the job is queued again.</summary>
    public async Task<(bool Requeued, string Outcome)> RequeueAsync(string jobId)
    {
        if (await deadLetters.GetAsync(jobId).ConfigureAwait(false) is not { } record)
        {
            return (false, $"No dead-lettered message is kept for job {jobId}.");
        }

        RunInference? message;
        try
        {
            message = record.MessageJson is { } json ? JsonSerializer.Deserialize<RunInference>(json, JsonSerializerOptions.Web) : null;
        }
        catch (JsonException ex)
        {
            return (false, $"The kept message of job {jobId} does not read as a job ({ex.Message}); it cannot be sent again.");
        }

        if (message is null || message.JobId != jobId)
        {
            return (false, $"The kept message of job {jobId} does not read as a job; it cannot be sent again.");
        }

        switch (await store.RequeueAsync(jobId).ConfigureAwait(false))
        {
            case RequeueOutcome.Missing:
                await deadLetters.RemoveAsync(jobId).ConfigureAwait(false);
                return (false, $"Job {jobId} is no longer stored.");
            case RequeueOutcome.InputGone:
                return (false, $"The input of job {jobId} is no longer stored; it cannot run again.");
            case RequeueOutcome.NotFailed:
                return (false, $"Job {jobId} is not failed (any more); only failed jobs are requeued.");
        }

        var queue = MainQueue(record.Queue);
        try
        {
            // Not cancelled with the operator's request: the job is queued again, its message must follow.
            await sender.SendAsync(message with { ExpiresAt = null, SubmittedAt = clock.GetUtcNow() }, queue).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            await store.FailDeadLetteredAsync(jobId, DeadLetterSweeper.Code, $"Requeued by an operator, but the broker did not take the message: {ex.Message}").ConfigureAwait(false);
            return (false, $"The broker did not take the message of job {jobId}: {ex.Message}. The job is failed again.");
        }

        await deadLetters.RemoveAsync(jobId).ConfigureAwait(false);
        LogRequeued(logger, jobId, queue);
        return (true, $"Job {jobId} is queued again on {queue}.");
    }

    /// <summary>The model queue (priority lane) a dead-letter queue belongs to.</summary>
    internal static string MainQueue(string deadLetterQueue) =>
        DeadLetterSweeper.Suffixes.FirstOrDefault(s => deadLetterQueue.EndsWith(s, StringComparison.Ordinal)) is { } suffix
            ? deadLetterQueue[..^suffix.Length]
            : deadLetterQueue;

    [LoggerMessage(EventId = 734, Level = LogLevel.Information, Message = "Job {JobId} requeued by an operator on {Queue}")]
    private static partial void LogRequeued(ILogger logger, string jobId, string queue);
}
