using System.Globalization;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Routing;
using Async.Serving.Api.Webhooks;
using Async.Serving.Breakers;
using Async.Serving.Contracts;
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
/// <c>Idempotency-Key</c>, routing a bare model name to a version (<see cref="ModelRouter"/>; after
/// the key, so a replay returns the first job whatever routing would choose now; a version whose
/// circuit breaker is open is skipped when the name has another), the chosen version's breaker (read
/// once: what routing read of it, when it did), the queue-full check (all of the model's priority
/// lanes), the priority (the tenant's default when the submit names none) and the confirmed publish,
/// in that order, with the key released on every path that makes no job. The one way a job is created: <c>POST /v1/jobs</c>
/// is an HTTP adapter over it, and so is every other way of submitting.
/// </summary>
internal sealed class JobIntake(
    JobPublisher publisher,
    IdempotencyKeys idempotency,
    QueueDepthProbe queues,
    RedisJobStore store,
    ModelBreakers breakers,
    WebhookUrlCheck webhookUrls,
    ModelRouter router,
    IOptions<QueueOptions> queueOptions,
    IOptions<TenantOptions> tenants,
    Cache.ResultCache cache,
    InputStager stager,
    TimeProvider clock)
{
    /// <summary>The <c>Idempotency-Key</c> header's value is unusable: the problem to answer with, else null.</summary>
    public static ProblemHttpResult? CheckIdempotencyKey(string? key) =>
        key is null || IdempotencyKeyRule.IsWellFormed(key)
            ? null
            : ApiProblems.Invalid($"Idempotency-Key must be 1 to {IdempotencyKeyRule.MaxLength} visible ASCII characters (or spaces).",
                new Dictionary<string, string[]> { ["Idempotency-Key"] = [key.Length is 0 or > IdempotencyKeyRule.MaxLength ? "Length out of range." : "Only visible ASCII characters and spaces."] });

    /// <remarks>A submit that makes no job (refused, replayed, failed) deletes its staged input, if it has one in the blob store.</remarks>
    public async Task<SubmitOutcome> SubmitAsync(Submission submission, string tenant, string? idempotencyKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(submission);
        SubmitOutcome? outcome = null;
        try
        {
            outcome = await SubmitStagedAsync(submission, tenant, idempotencyKey, cancellationToken).ConfigureAwait(false);
            return outcome;
        }
        finally
        {
            if (outcome is not SubmitOutcome.Created)
            {
                await stager.DiscardAsync(submission.Input).ConfigureAwait(false);
            }
        }
    }

    private async Task<SubmitOutcome> SubmitStagedAsync(Submission submission, string tenant, string? idempotencyKey, CancellationToken cancellationToken)
    {
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
                claim = await idempotency.ClaimAsync(IdempotencyScope.Jobs, tenant, idempotencyKey, fingerprint!,
                    async id => await store.GetAsync(id, includeOutput: false).ConfigureAwait(false) is not null, cancellationToken).ConfigureAwait(false);
            }
            catch (IdempotencyKeyBusyException ex)
            {
                return new SubmitOutcome.Refused(ApiProblems.IdempotencyKeyInUse(ex.Message), 1);
            }

            switch (claim)
            {
                case IdempotencyKeys.Claim.Mismatch:
                    return new SubmitOutcome.Refused(ApiProblems.IdempotencyKeyMismatch(
                        "This Idempotency-Key was first used with a different request body; use a new key for a new job."));
                case IdempotencyKeys.Claim.Replay replay:
                    var first = await store.GetAsync(replay.JobId).ConfigureAwait(false);
                    return first is null || first.TenantId != tenant
                        ? new SubmitOutcome.Refused(ApiProblems.JobNotFound(replay.JobId))
                        : new SubmitOutcome.Replayed(first);
            }
        }

        CacheTicket? ticket;
        bool full;
        ModelAvailability model;
        try
        {
            var (routed, routedAvailability) = await router.RouteAsync(submission, cancellationToken).ConfigureAwait(false);
            if (routed.Id != submission.Model.Id)
            {
                if (SubmissionReader.CheckRouted(submission, routed) is { } notForRouted)
                {
                    await ReleaseAsync().ConfigureAwait(false);
                    return new SubmitOutcome.Refused(notForRouted);
                }

                submission = submission with { Model = routed };
            }

            // The cache key names the version that runs: after routing. A job the cache can answer needs
            // neither the model nor the queue: an open breaker or a full queue does not refuse it.
            ticket = cache.TicketFor(submission, tenant);
            var cached = ticket is not null && await store.CacheHoldsAsync(ticket.Key).ConfigureAwait(false);
            if (cached)
            {
                (model, full) = (ModelAvailability.Closed, false);
            }
            else if (routedAvailability is { } seen)
            {
                // Routing read this version's breaker in this submit: not read again.
                model = seen;
                full = model.Available && await queues.IsFullAsync(submission.Model, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                // Both asked at once (one round trip). A submit the breaker then refuses was counted as
                // admitted by the queue check, which errs on the safe side until the next measurement.
                var breaker = breakers.CheckAsync(submission.Model.Id, cancellationToken);
                var queue = queues.IsFullAsync(submission.Model, cancellationToken);
                await Task.WhenAll(breaker, queue).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                model = await breaker.ConfigureAwait(false);
                full = model.Available && await queue.ConfigureAwait(false);
            }
        }
        catch
        {
            // A client gone (or the routing read or the probe failed) after the key was claimed: free the key now, not in a minute.
            await ReleaseAsync().ConfigureAwait(false);
            throw;
        }

        if (!model.Available)
        {
            await ReleaseAsync().ConfigureAwait(false);
            var now = clock.GetUtcNow();
            var seconds = (int)Math.Ceiling(((model.RetryAt ?? now) - now).TotalSeconds);
            return new SubmitOutcome.Refused(
                ApiProblems.Problem(StatusCodes.Status503ServiceUnavailable, ApiProblems.ModelUnavailable, "The model is unavailable.",
                    $"{submission.Model.Id} failed on every recent batch and is marked unavailable until {model.RetryAt:yyyy-MM-ddTHH:mm:ssZ}; "
                    + "no job was created. Retry later, or submit to another version (GET /v1/models shows which are available)."),
                Math.Clamp(seconds, 1, 86_400));
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

        // A submit that names no priority takes its tenant's (after the fingerprint: the request is what it was).
        submission = submission with { Priority = submission.Priority ?? tenants.Value.DefaultPriority(tenant) };
        try
        {
            // The key points at the job before its message is sent: from then on a retry gets this job.
            var job = await publisher.SubmitAsync(submission, tenant,
                idempotencyKey is null ? null : id => idempotency.CompleteAsync(IdempotencyScope.Jobs, tenant, idempotencyKey, fingerprint!, id), ticket).ConfigureAwait(false);
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

        Task ReleaseAsync() => idempotencyKey is null ? Task.CompletedTask : idempotency.ReleaseAsync(IdempotencyScope.Jobs, tenant, idempotencyKey);
    }
}
