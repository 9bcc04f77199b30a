using System.Diagnostics;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using Async.Serving.Api.Auth;
using Async.Serving.Api.Errors;
using Async.Serving.Api.OpenApi;
using Async.Serving.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

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

    /// <summary>The services <c>POST /v1/jobs</c> needs, bound by <c>[AsParameters]</c>.</summary>
    internal readonly record struct SubmitServices(SubmissionReader Reader, JobIntake Intake, JobWaiter Waiter);

    internal static async Task<Results<Ok<JobResource>, Accepted<JobResource>, ProblemHttpResult>> SubmitAsync(
        HttpContext http,
        [AsParameters] SubmitServices services,
        [FromQuery] int? wait,
        [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        CancellationToken cancellationToken)
    {
        // Both checked before the body is read: a request refused for its headers reads nothing.
        if ((InvalidWait(wait) ?? JobIntake.CheckIdempotencyKey(idempotencyKey)) is { } badRequest)
        {
            return badRequest;
        }

        var (submission, problem) = await services.Reader.ReadAsync(http.Request, cancellationToken).ConfigureAwait(false);
        if (problem is not null)
        {
            return problem;
        }

        var outcome = await services.Intake.SubmitAsync(submission!, http.User.TenantId(), idempotencyKey, cancellationToken).ConfigureAwait(false);
        switch (outcome)
        {
            case SubmitOutcome.Refused refused:
                if (refused.RetryAfterSeconds is { } seconds)
                {
                    http.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                }

                return refused.Problem;
            case SubmitOutcome.Replayed replayed:
                http.Response.Headers["Idempotent-Replayed"] = "true";
                return await AnswerAsync(replayed.Job, wait, services.Waiter, cancellationToken).ConfigureAwait(false);
            case SubmitOutcome.Created created:
                return await AnswerAsync(created.Job, wait, services.Waiter, cancellationToken).ConfigureAwait(false);
            default:
                throw new UnreachableException();
        }
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
