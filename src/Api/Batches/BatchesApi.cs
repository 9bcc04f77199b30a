using System.Text.Json;
using Async.Serving.Api.Auth;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Jobs;
using Async.Serving.Api.OpenApi;
using Async.Serving.Jobs;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Batches;

public static class BatchesApi
{
    /// <summary>Lines of the results file read (and their jobs fetched) per round trip.</summary>
    private const int ResultsPage = 200;

    private static readonly ReadOnlyMemory<byte> Newline = "\n"u8.ToArray();

    public static RouteGroupBuilder MapBatchesApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/batches").RequireAuthorization("tenant").WithTags("Batches");
        group.MapPost("/", CreateAsync).WithName("CreateBatch")
            .DisableAntiforgery()
            .Accepts<BatchRequest>("application/jsonl", "application/x-ndjson", "multipart/form-data")
            .ProducesProblems(400, 409, 413, 415, 422)
            .WithSummary("Submit many jobs as a JSONL file (one job per line, each with a custom_id); answers 202 with the batch once the file is stored, before its jobs exist. "
                + "With an Idempotency-Key, the same key and the same batch answer the first batch again (Idempotent-Replayed: true); another batch with that key is 422.");
        group.MapGet("/", ListAsync).WithName("ListBatches").ProducesProblems(400).WithSummary("The tenant's batches, newest first, cursor paging.");
        group.MapGet("/{id}", GetAsync).WithName("GetBatch").ProducesProblems(404).WithSummary("A batch's status, its lines counted by status, and its progress.");
        group.MapPost("/{id}/cancel", CancelAsync).WithName("CancelBatch").ProducesProblems(404, 409)
            .WithSummary("Cancel a batch: no more lines become jobs and every queued or running job of it is cancelled; 409 once it has ended.");
        group.MapGet("/{id}/results", Results).WithName("GetBatchResults").ProducesProblems(404)
            .Produces<BatchResultLine>(StatusCodes.Status200OK, BatchUpload.JsonlTypes[0])
            .WithSummary("JSONL, one line per input line in input order: custom_id, job_id, status, and output or error; available at any time (lines not yet ended show their status).");
        return group;
    }

    internal static async Task<Results<Accepted<BatchResource>, ProblemHttpResult>> CreateAsync(
        HttpContext http,
        BatchUpload upload,
        IBackgroundJobClient hangfire,
        [FromQuery(Name = "webhook_url")] string? webhookUrl,
        [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        CancellationToken cancellationToken)
    {
        // Checked before the body is read, as for a job.
        if (JobIntake.CheckIdempotencyKey(idempotencyKey) is { } badKey)
        {
            return badKey;
        }

        var (created, problem) = await upload.CreateAsync(http.Request, http.User.TenantId(), webhookUrl, idempotencyKey, cancellationToken).ConfigureAwait(false);
        if (problem is not null)
        {
            return problem;
        }

        if (created!.Replayed)
        {
            // The first batch as it is now, answered as a first submit is (202), like a replayed job.
            http.Response.Headers["Idempotent-Replayed"] = "true";
        }
        else
        {
            // Should this fail (the batch is stored), the sweep starts the batch within minutes.
            BatchRunner.Enqueue(hangfire, created.Batch.Id);
        }

        var resource = BatchResource.From(created.Batch);
        return TypedResults.Accepted(resource.Links.Self, resource);
    }

    internal static async Task<Results<Ok<BatchList>, ProblemHttpResult>> ListAsync(
        HttpContext http, BatchStore store, [FromQuery] int? limit, [FromQuery] string? cursor, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (limit is < 1 or > 100)
        {
            errors["limit"] = ["Between 1 and 100."];
        }

        if (cursor is not null && !BatchStore.IsWellFormed(cursor))
        {
            errors["cursor"] = ["Use next_cursor from a previous page."];
        }

        if (errors.Count > 0)
        {
            return ApiProblems.Invalid("Some query parameters are not valid.", errors);
        }

        var take = limit ?? 20;
        var batches = await store.ListAsync(http.User.TenantId(), cursor, take + 1, cancellationToken).ConfigureAwait(false);
        var page = batches.Take(take).ToList();
        return TypedResults.Ok(new BatchList([.. page.Select(BatchResource.From)], batches.Count > take ? page[^1].Id : null));
    }

    internal static async Task<Results<Ok<BatchResource>, ProblemHttpResult>> GetAsync(string id, HttpContext http, BatchStore store, CancellationToken cancellationToken)
    {
        var batch = BatchStore.IsWellFormed(id) ? await store.GetAsync(id, http.User.TenantId(), cancellationToken).ConfigureAwait(false) : null;
        return batch is null ? NotFound(id) : TypedResults.Ok(BatchResource.From(batch));
    }

    internal static async Task<Results<Accepted<BatchResource>, ProblemHttpResult>> CancelAsync(
        string id, HttpContext http, BatchRunner runner, BatchStore store, CancellationToken cancellationToken)
    {
        var tenant = http.User.TenantId();
        var before = BatchStore.IsWellFormed(id) ? await runner.CancelAsync(id, tenant, cancellationToken).ConfigureAwait(false) : null;
        if (before is null)
        {
            return NotFound(id);
        }

        if (BatchStatuses.IsEnded(before))
        {
            return ApiProblems.Problem(StatusCodes.Status409Conflict, ApiProblems.Conflict, "The batch has already ended.",
                $"Batch {id} is {before}; only a batch that has not ended can be cancelled.");
        }

        var batch = await store.GetAsync(id, tenant, cancellationToken).ConfigureAwait(false);
        var resource = BatchResource.From(batch!);
        return TypedResults.Accepted(resource.Links.Self, resource);
    }

    /// <summary>
    /// Streams the results: a page of lines at a time from PostgreSQL, their jobs (with outputs) read
    /// from Redis in one pipelined round per page, each written and flushed before the next page is
    /// read, so memory holds one page whatever the batch's size.
    /// </summary>
    internal static async Task<Results<PushStreamHttpResult, ProblemHttpResult>> Results(
        string id, HttpContext http, BatchStore store, RedisJobStore jobs, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, CancellationToken cancellationToken)
    {
        if (!BatchStore.IsWellFormed(id) || await store.HeadAsync(id, cancellationToken).ConfigureAwait(false) is not { } head || head.TenantId != http.User.TenantId())
        {
            return NotFound(id);
        }

        var options = json.Value.SerializerOptions;
        return TypedResults.Stream(async body =>
        {
            var after = 0;
            while (await store.LinesAsync(id, after, ResultsPage, cancellationToken).ConfigureAwait(false) is { Count: > 0 } page)
            {
                var records = await Task.WhenAll(page.Select(line => line.JobId is { } jobId
                    ? jobs.GetAsync(jobId)
                    : Task.FromResult<JobRecord?>(null))).ConfigureAwait(false);
                for (var i = 0; i < page.Count; i++)
                {
                    var job = records[i] is { } r && r.TenantId == head.TenantId ? r : null;
                    await JsonSerializer.SerializeAsync(body, BatchResultLine.From(page[i], job), options, cancellationToken).ConfigureAwait(false);
                    await body.WriteAsync(Newline, cancellationToken).ConfigureAwait(false);
                }

                await body.FlushAsync(cancellationToken).ConfigureAwait(false);
                after = page[^1].Line;
            }
        }, BatchUpload.JsonlTypes[0]);
    }

    private static ProblemHttpResult NotFound(string id) =>
        ApiProblems.Problem(StatusCodes.Status404NotFound, ApiProblems.NotFound, "Batch not found.", $"No batch '{id}' for this API key's tenant.");
}
