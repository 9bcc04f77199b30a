using System.Globalization;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Webhooks;
using Async.Serving.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Jobs;

/// <summary>What a submit came to: a new job, the job an <c>Idempotency-Key</c> already made, or a refusal.</summary>
public abstract record SubmitOutcome
{
    private SubmitOutcome()
    {
    }

    /// <summary>A new job, stored and confirmed by the broker.</summary>
    public sealed record Created(JobRecord Job) : SubmitOutcome;

    /// <summary>The job that an earlier request with the same <c>Idempotency-Key</c> and body made.</summary>
    public sealed record Replayed(JobRecord Job) : SubmitOutcome;

    /// <summary>No job: the problem to answer with, and the <c>Retry-After</c> seconds when a retry may succeed.</summary>
    public sealed record Refused(ProblemHttpResult Problem, int? RetryAfterSeconds = null) : SubmitOutcome;
}

/// <summary>
/// Turns a checked <see cref="Submission"/> into a job: the webhook URL guard, the
/// <c>Idempotency-Key</c>, the queue-full check and the confirmed publish, in that order, with the
/// key released on every path that makes no job. The one way a job is created: <c>POST /v1/jobs</c>
/// is an HTTP adapter over it, and so is every other way of submitting.
/// </summary>
internal sealed class JobIntake(
    JobPublisher publisher,
    IdempotencyKeys idempotency,
    QueueDepthProbe queues,
    RedisJobStore store,
    WebhookUrlCheck webhookUrls,
    IOptions<QueueOptions> queueOptions,
    Cache.ResultCache cache)
{
    /// <summary>The <c>Idempotency-Key</c> header's value is unusable: the problem to answer with, else null.</summary>
    public static ProblemHttpResult? CheckIdempotencyKey(string? key) =>
        key is null || IdempotencyKeys.IsWellFormed(key)
            ? null
            : ApiProblems.Invalid($"Idempotency-Key must be 1 to {IdempotencyKeys.MaxKeyLength} visible ASCII characters (or spaces).",
                new Dictionary<string, string[]> { ["Idempotency-Key"] = [key.Length is 0 or > IdempotencyKeys.MaxKeyLength ? "Length out of range." : "Only visible ASCII characters and spaces."] });

    public async Task<SubmitOutcome> SubmitAsync(Submission submission, string tenant, string? idempotencyKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(submission);
        if (CheckIdempotencyKey(idempotencyKey) is { } badKey)
        {
            return new SubmitOutcome.Refused(badKey);
        }

        if (submission.Webhook is { } webhook && await webhookUrls.RefusalAsync(webhook, cancellationToken).ConfigureAwait(false) is { } refused)
        {
            return new SubmitOutcome.Refused(refused);
        }

        var fingerprint = idempotencyKey is null ? null : IdempotencyKeys.Fingerprint(submission);
        if (idempotencyKey is not null)
        {
            IdempotencyKeys.Claim claim;
            try
            {
                claim = await idempotency.ClaimAsync(tenant, idempotencyKey, fingerprint!,
                    async id => await store.GetAsync(id, includeOutput: false).ConfigureAwait(false) is not null, cancellationToken).ConfigureAwait(false);
            }
            catch (IdempotencyKeyBusyException ex)
            {
                return new SubmitOutcome.Refused(
                    ApiProblems.Problem(StatusCodes.Status409Conflict, ApiProblems.Conflict, "Idempotency-Key in use.", $"{ex.Message} Retry later."), 1);
            }

            switch (claim)
            {
                case IdempotencyKeys.Claim.Mismatch:
                    return new SubmitOutcome.Refused(ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, ApiProblems.IdempotencyMismatch,
                        "Idempotency-Key reused with another request.",
                        "This Idempotency-Key was first used with a different request body; use a new key for a new job."));
                case IdempotencyKeys.Claim.Replay replay:
                    var first = await store.GetAsync(replay.JobId).ConfigureAwait(false);
                    return first is null || first.TenantId != tenant
                        ? new SubmitOutcome.Refused(ApiProblems.JobNotFound(replay.JobId))
                        : new SubmitOutcome.Replayed(first);
            }
        }

        var ticket = cache.TicketFor(submission, tenant);
        bool full;
        try
        {
            // A job the cache can answer takes nothing from the queue: a full queue does not refuse it.
            full = await queues.IsFullAsync(submission.Model.QueueName, cancellationToken).ConfigureAwait(false)
                && !(ticket is not null && await store.CacheHoldsAsync(ticket.Key).ConfigureAwait(false));
        }
        catch
        {
            // A client gone (or the probe failed) after the key was claimed: free the key now, not in a minute.
            await ReleaseAsync().ConfigureAwait(false);
            throw;
        }

        if (full)
        {
            await ReleaseAsync().ConfigureAwait(false);
            var options = queueOptions.Value;
            return new SubmitOutcome.Refused(
                ApiProblems.Problem(StatusCodes.Status503ServiceUnavailable, ApiProblems.QueueFull, "The queue is full.",
                    $"The queue of {submission.Model.Id} holds {options.MaxDepth.ToString("N0", CultureInfo.InvariantCulture)} or more waiting jobs; retry later."),
                options.RetryAfterSeconds);
        }

        try
        {
            // The key points at the job before its message is sent: from then on a retry gets this job.
            var job = await publisher.SubmitAsync(submission, tenant,
                idempotencyKey is null ? null : id => idempotency.CompleteAsync(tenant, idempotencyKey, fingerprint!, id), ticket).ConfigureAwait(false);
            return new SubmitOutcome.Created(job);
        }
        catch (BrokerUnavailableException ex)
        {
            await ReleaseAsync().ConfigureAwait(false);
            return new SubmitOutcome.Refused(ApiProblems.Problem(StatusCodes.Status503ServiceUnavailable, ApiProblems.BrokerUnavailable,
                "The queue is unavailable.", $"{ex.Message} No job was created; retry later."), 5);
        }
        catch
        {
            // Whatever else failed (before the send: the job was removed), a claimed key must not stay
            // pending; should this release not reach Redis either, the next claim takes the key over.
            await ReleaseAsync().ConfigureAwait(false);
            throw;
        }

        Task ReleaseAsync() => idempotencyKey is null ? Task.CompletedTask : idempotency.ReleaseAsync(tenant, idempotencyKey);
    }
}
