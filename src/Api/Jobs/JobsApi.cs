using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using Async.Serving.Api.Auth;
using Async.Serving.Api.Errors;
using Async.Serving.Api.OpenApi;
using Async.Serving.Api.Webhooks;
using Async.Serving.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Jobs;

public static class JobsApi
{
    private const int MaxWaitSeconds = 60;

    public static RouteGroupBuilder MapJobsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/jobs").RequireAuthorization("tenant").WithTags("Jobs").AddEndpointFilter<JobRequestLogScope>();
        group.MapPost("/", SubmitAsync).WithName("SubmitJob")
            .DisableAntiforgery()
            .ProducesProblems(400, 409, 413, 415, 422)
            .Accepts<SubmitRequest>("application/json", "multipart/form-data")
            .WithSummary("Submit a job; answers with a ticket once the broker confirmed it (200 with the finished job when ?wait=N saw it finish).");
        group.MapGet("/", ListAsync).WithName("ListJobs").ProducesProblems(400).WithSummary("The tenant's jobs, newest first, without outputs; filters status and pipeline; cursor paging.");
        group.MapGet("/{id}", GetAsync).WithName("GetJob").ProducesProblems(400, 404).WithSummary("A job's status and, once it succeeded, its output; ?wait=N long-polls until terminal.");
        group.MapGet("/{id}/events", Events).WithName("JobEvents").ProducesProblems(400, 404).WithSummary(
            "Server-sent events: status, progress, completed, each with an id; Last-Event-ID (or ?last_event_id=) resumes after it; the stream ends at a terminal state.");
        group.MapPost("/{id}/cancel", CancelAsync).WithName("CancelJob").ProducesProblems(404, 409).WithSummary("Cancel: a queued job never runs; a running one is stopped by its worker; 409 when terminal.");
        return group;
    }

    internal static async Task<Results<Ok<JobResource>, Accepted<JobResource>, ProblemHttpResult>> SubmitAsync(
        HttpContext http,
        SubmissionReader reader,
        JobPublisher publisher,
        IdempotencyKeys idempotency,
        QueueDepthProbe queues,
        JobWaiter waiter,
        RedisJobStore store,
        WebhookUrlCheck webhookUrls,
        IOptions<QueueOptions> queueOptions,
        [FromQuery] int? wait,
        [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        CancellationToken cancellationToken)
    {
        if (InvalidWait(wait) is { } badWait)
        {
            return badWait;
        }

        if (idempotencyKey is not null && !IdempotencyKeys.IsWellFormed(idempotencyKey))
        {
            return ApiProblems.Invalid($"Idempotency-Key must be 1 to {IdempotencyKeys.MaxKeyLength} visible ASCII characters (or spaces).",
                new Dictionary<string, string[]> { ["Idempotency-Key"] = [idempotencyKey.Length is 0 or > IdempotencyKeys.MaxKeyLength ? "Length out of range." : "Only visible ASCII characters and spaces."] });
        }

        var (submission, problem) = await reader.ReadAsync(http.Request, cancellationToken).ConfigureAwait(false);
        if (problem is not null)
        {
            return problem;
        }

        if (submission!.Webhook is { } webhook && await webhookUrls.RefusalAsync(webhook, cancellationToken).ConfigureAwait(false) is { } refused)
        {
            return refused;
        }

        var tenant = http.User.TenantId();
        var fingerprint = idempotencyKey is null ? null : IdempotencyKeys.Fingerprint(submission!);
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
                http.Response.Headers.RetryAfter = "1";
                return ApiProblems.Problem(StatusCodes.Status409Conflict, ApiProblems.Conflict, "Idempotency-Key in use.", $"{ex.Message} Retry later.");
            }

            switch (claim)
            {
                case IdempotencyKeys.Claim.Mismatch:
                    return ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, ApiProblems.IdempotencyMismatch,
                        "Idempotency-Key reused with another request.",
                        "This Idempotency-Key was first used with a different request body; use a new key for a new job.");
                case IdempotencyKeys.Claim.Replay replay:
                    http.Response.Headers["Idempotent-Replayed"] = "true";
                    var first = await store.GetAsync(replay.JobId).ConfigureAwait(false);
                    return first is null || first.TenantId != tenant
                        ? ApiProblems.JobNotFound(replay.JobId)
                        : await AnswerAsync(first, wait, waiter, cancellationToken).ConfigureAwait(false);
            }
        }

        bool full;
        try
        {
            full = await queues.IsFullAsync(submission!.Model.QueueName, cancellationToken).ConfigureAwait(false);
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
            http.Response.Headers.RetryAfter = queueOptions.Value.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return ApiProblems.Problem(StatusCodes.Status503ServiceUnavailable, ApiProblems.QueueFull, "The queue is full.",
                $"The queue of {submission.Model.Id} holds {queueOptions.Value.MaxDepth:N0} or more waiting jobs; retry later.");
        }

        JobRecord job;
        try
        {
            // The key points at the job before its message is sent: from then on a retry gets this job.
            job = await publisher.SubmitAsync(submission, tenant,
                idempotencyKey is null ? null : id => idempotency.CompleteAsync(tenant, idempotencyKey, fingerprint!, id)).ConfigureAwait(false);
        }
        catch (BrokerUnavailableException ex)
        {
            await ReleaseAsync().ConfigureAwait(false);
            http.Response.Headers.RetryAfter = "5";
            return ApiProblems.Problem(StatusCodes.Status503ServiceUnavailable, ApiProblems.BrokerUnavailable,
                "The queue is unavailable.", $"{ex.Message} No job was created; retry later.");
        }
        catch
        {
            // Whatever else failed (before the send: the job was removed), a claimed key must not stay
            // pending; should this release not reach Redis either, the next claim takes the key over.
            await ReleaseAsync().ConfigureAwait(false);
            throw;
        }

        return await AnswerAsync(job, wait, waiter, cancellationToken).ConfigureAwait(false);

        Task ReleaseAsync() => idempotencyKey is null ? Task.CompletedTask : idempotency.ReleaseAsync(tenant, idempotencyKey);
    }

    internal static async Task<Results<Ok<JobList>, ProblemHttpResult>> ListAsync(
        HttpContext http,
        RedisJobStore store,
        [FromQuery] string? status,
        [FromQuery] string? pipeline,
        [FromQuery] int? limit,
        [FromQuery] string? cursor)
    {
        var errors = new Dictionary<string, string[]>();
        if (status is not null && !JobStatuses.IsTerminal(status) && status is not (JobStatuses.Queued or JobStatuses.Running))
        {
            errors["status"] = ["One of queued, running, succeeded, failed, cancelled, expired."];
        }

        if (limit is < 1 or > 100)
        {
            errors["limit"] = ["Between 1 and 100."];
        }

        if (cursor is { Length: not 32 } || (cursor is not null && !cursor.All(char.IsAsciiHexDigitLower)))
        {
            errors["cursor"] = ["Use next_cursor from a previous page."];
        }

        if (errors.Count > 0)
        {
            return ApiProblems.Invalid("Some query parameters are not valid.", errors);
        }

        var (jobs, next) = await store.ListAsync(
            http.User.TenantId(),
            cursor,
            limit ?? 20,
            job => (status is null || job.Status == status) && (pipeline is null || job.Pipeline == pipeline)).ConfigureAwait(false);
        return TypedResults.Ok(new JobList([.. jobs.Select(JobResource.From)], next));
    }

    internal static async Task<Results<Ok<JobResource>, ProblemHttpResult>> GetAsync(
        string id, HttpContext http, RedisJobStore store, JobWaiter waiter, [FromQuery] int? wait, CancellationToken cancellationToken)
    {
        if (InvalidWait(wait) is { } badWait)
        {
            return badWait;
        }

        var job = await store.GetAsync(id).ConfigureAwait(false);
        if (!Owns(http, job))
        {
            return ApiProblems.JobNotFound(id);
        }

        if (wait > 0 && !JobStatuses.IsTerminal(job!.Status))
        {
            job = await waiter.WaitForTerminalAsync(id, TimeSpan.FromSeconds(wait.Value), cancellationToken).ConfigureAwait(false) ?? job;
        }

        return TypedResults.Ok(JobResource.From(job!));
    }

    internal static async Task<Results<ServerSentEventsResult<JobResource>, ProblemHttpResult>> Events(
        string id,
        HttpContext http,
        RedisJobStore store,
        JobWaiter waiter,
        [FromHeader(Name = "Last-Event-ID")] string? lastEventIdHeader,
        [FromQuery(Name = "last_event_id")] string? lastEventIdQuery,
        CancellationToken cancellationToken)
    {
        JobEventId? after = null;
        var lastEventId = string.IsNullOrEmpty(lastEventIdHeader) ? lastEventIdQuery : lastEventIdHeader;
        if (!string.IsNullOrEmpty(lastEventId) && !JobEventId.TryParse(lastEventId, out after))
        {
            return ApiProblems.Invalid("Last-Event-ID must be an id this stream sent: '<attempt>.<phase>.<permille>'.",
                new Dictionary<string, string[]> { ["Last-Event-ID"] = ["Not an event id of this API."] });
        }

        var job = await store.GetAsync(id, includeOutput: false).ConfigureAwait(false);
        if (!Owns(http, job))
        {
            return ApiProblems.JobNotFound(id);
        }

        return TypedResults.ServerSentEvents(StreamAsync(id, after, waiter, cancellationToken));
    }

    internal static async Task<Results<Accepted<JobResource>, ProblemHttpResult>> CancelAsync(
        string id, HttpContext http, RedisJobStore store)
    {
        var job = await store.GetAsync(id, includeOutput: false).ConfigureAwait(false);
        if (!Owns(http, job))
        {
            return ApiProblems.JobNotFound(id);
        }

        var outcome = await store.CancelAsync(id).ConfigureAwait(false);
        if (outcome == CancelOutcome.Missing)
        {
            return ApiProblems.JobNotFound(id);
        }

        // A queued job ended here, its event in the outbox with it; a running one ends when its worker stops it.
        var now = await store.GetAsync(id).ConfigureAwait(false) ?? job!;
        if (outcome == CancelOutcome.AlreadyTerminal)
        {
            return ApiProblems.Problem(StatusCodes.Status409Conflict, ApiProblems.Conflict, "The job has already finished.",
                $"Job {id} is {now.Status}; only queued or running jobs can be cancelled.");
        }

        return TypedResults.Accepted($"/v1/jobs/{id}", JobResource.From(now));
    }

    /// <summary>
    /// Each state the job passes through whose <see cref="JobEventId"/> is newer than the last one sent
    /// (or than <paramref name="after"/>, the client's <c>Last-Event-ID</c>): ids strictly increase, so a
    /// resumed stream repeats nothing and, as every state change is read again from the store, misses
    /// nothing but intermediate progress. A client that saw the end gets nothing more.
    /// </summary>
    private static async IAsyncEnumerable<SseItem<JobResource>> StreamAsync(
        string id, JobEventId? after, JobWaiter waiter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (after is { IsEnded: true })
        {
            yield break;
        }

        var previous = after;
        await foreach (var job in waiter.WatchAsync(id, cancellationToken).ConfigureAwait(false))
        {
            var eventId = JobEventId.From(job);
            if (previous is { } seen && eventId <= seen)
            {
                continue;
            }

            var type = eventId.IsEnded ? "completed"
                : previous is { } p && p.Attempt == eventId.Attempt && p.Phase == eventId.Phase ? "progress"
                : "status";
            yield return new SseItem<JobResource>(JobResource.From(job), type) { EventId = eventId.ToString() };
            previous = eventId;
        }
    }

    private static async Task<Results<Ok<JobResource>, Accepted<JobResource>, ProblemHttpResult>> AnswerAsync(
        JobRecord job, int? wait, JobWaiter waiter, CancellationToken cancellationToken)
    {
        if (wait > 0 && !JobStatuses.IsTerminal(job.Status))
        {
            job = await waiter.WaitForTerminalAsync(job.Id, TimeSpan.FromSeconds(wait.Value), cancellationToken).ConfigureAwait(false) ?? job;
        }

        var resource = JobResource.From(job);
        return JobStatuses.IsTerminal(job.Status) && wait > 0
            ? TypedResults.Ok(resource)
            : TypedResults.Accepted(resource.Links.Self, resource);
    }

    /// <summary>Another tenant's job is answered exactly like a missing one: no existence leak.</summary>
    private static bool Owns(HttpContext http, JobRecord? job) => job is not null && job.TenantId == http.User.TenantId();

    private static ProblemHttpResult? InvalidWait(int? wait) =>
        wait is < 0 or > MaxWaitSeconds
            ? ApiProblems.Invalid($"wait must be between 0 and {MaxWaitSeconds} seconds.", new Dictionary<string, string[]> { ["wait"] = ["Out of range."] })
            : null;
}

public sealed record JobList(IReadOnlyList<JobResource> Data, string? NextCursor);
