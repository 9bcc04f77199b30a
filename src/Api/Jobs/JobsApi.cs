using Async.Serving.Api.Auth;
using Async.Serving.Api.Errors;
using Async.Serving.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Async.Serving.Api.Jobs;

public static class JobsApi
{
    public static RouteGroupBuilder MapJobsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/jobs").RequireAuthorization("tenant").WithTags("Jobs");
        group.MapPost("/", SubmitAsync)
            .DisableAntiforgery()
            .Accepts<SubmitRequest>("application/json", "multipart/form-data")
            .WithSummary("Submit a job; answers with a ticket once the broker confirmed it.");
        group.MapGet("/{id}", GetAsync).WithSummary("A job's status and, once it succeeded, its output.");
        return group;
    }

    internal static async Task<Results<Accepted<JobResource>, ProblemHttpResult>> SubmitAsync(
        HttpContext http, SubmissionReader reader, JobPublisher publisher, CancellationToken cancellationToken)
    {
        var (submission, problem) = await reader.ReadAsync(http.Request, cancellationToken).ConfigureAwait(false);
        if (problem is not null)
        {
            return problem;
        }

        try
        {
            var job = await publisher.SubmitAsync(submission!, http.User.TenantId(), cancellationToken).ConfigureAwait(false);
            var resource = JobResource.From(job);
            return TypedResults.Accepted(resource.Links.Self, resource);
        }
        catch (BrokerUnavailableException ex)
        {
            http.Response.Headers.RetryAfter = "5";
            return ApiProblems.Problem(StatusCodes.Status503ServiceUnavailable, ApiProblems.BrokerUnavailable,
                "The queue is unavailable.", $"{ex.Message} No job was created; retry later.");
        }
    }

    internal static async Task<Results<Ok<JobResource>, ProblemHttpResult>> GetAsync(
        string id, HttpContext http, RedisJobStore store)
    {
        var job = await store.GetAsync(id).ConfigureAwait(false);
        // Another tenant's job is answered exactly like a missing one: no existence leak.
        if (job is null || job.TenantId != http.User.TenantId())
        {
            return ApiProblems.JobNotFound(id);
        }

        return TypedResults.Ok(JobResource.From(job));
    }
}
