using System.Diagnostics;
using Async.Serving.Blobs;
using Async.Serving.Contracts;
using Async.Serving.Hosting;
using Async.Serving.Jobs;

namespace Async.Serving.Api.Jobs;

/// <summary>The broker did not confirm the publish in time; the job was removed again.</summary>
public sealed class BrokerUnavailableException(string message, Exception inner) : Exception(message, inner);

/// <summary>
/// Stores a job and its input, then sends it to its model's queue (the lane of its priority,
/// <see cref="JobQueues"/>) and waits for the broker's
/// confirm. Only a confirmed job gets a ticket: when the send fails, the stored job is deleted, so
/// no orphan is left that no worker will ever see. The model's quorum queue is declared before the
/// first send (<see cref="JobQueueDeclarer"/>) and the send is mandatory: should the queue be gone
/// (deleted by an operator), the broker returns the message, the client gets 503, and the next
/// submit declares the queue again. A large input staged in the blob store becomes the job's
/// (<c>inputs/{id}</c>) just before the job is stored with a reference to it (docs/blobs.md).
/// </summary>
internal sealed partial class JobPublisher(
    RedisJobStore store,
    IBlobStore blobs,
    JobSender sender,
    TimeProvider clock,
    ILogger<JobPublisher> logger)
{
    private static readonly Prometheus.Counter Submitted = Prometheus.Metrics.CreateCounter(
        "serving_api_jobs_submitted_total", "Jobs accepted (broker-confirmed) by the API.",
        new Prometheus.CounterConfiguration { LabelNames = ["pipeline", "model"] });

    /// <remarks>
    /// Deliberately not cancellable by the client: once the job is stored, a client that hangs up
    /// must not leave it half-published. The publish is bounded by its own timeout instead.
    /// </remarks>
    /// <param name="stored">Called once the job is stored, before its message is sent (the Idempotency-Key records the job); when it throws, the job is removed.</param>
    /// <param name="cache">The job's part in the result cache, if any: a hit or a follower is stored and not sent (see <see cref="CreateCachedAsync"/>).</param>
    public async Task<JobRecord> SubmitAsync(Submission submission, string tenantId, Func<string, Task>? stored = null, CacheTicket? cache = null)
    {
        // Millisecond precision, as stored: the ticket and later reads show the same instant.
        var now = DateTimeOffset.FromUnixTimeMilliseconds(clock.GetUtcNow().ToUnixTimeMilliseconds());
        var id = cache is null ? RedisJobStore.NewJobId() : RedisJobStore.NewJobIdIn(cache.Key);
        var priority = JobPriorities.OrNormal(submission.Priority);
        // The job's trace: this span (under the request's) is the parent that the broker's send, and
        // later the outbox relay and every webhook attempt, continue from (stored with the job).
        using var activity = ServingTelemetry.Source.StartActivity("job.submit");
        activity?.SetTag(ServingTelemetry.JobIdTag, id);
        activity?.SetTag(ServingTelemetry.PipelineTag, submission.Pipeline);
        activity?.SetTag(ServingTelemetry.ModelTag, submission.Model.Id);
        var job = new JobRecord
        {
            Id = id,
            TenantId = tenantId,
            Status = JobStatuses.Queued,
            Pipeline = submission.Pipeline,
            Model = submission.Model.Id,
            RequestedModel = submission.RequestedModel,
            RoutingKey = submission.RoutingKey,
            Priority = priority,
            CreatedAt = now,
            MetadataJson = submission.MetadataJson,
            WebhookJson = submission.Webhook?.ToJson(),
            ExpiresAt = now.AddSeconds(submission.TtlSeconds),
            TraceParent = ServingTelemetry.TraceParent(activity ?? Activity.Current),
        };
        using var scope = logger.BeginJobScope(job.Id, tenantId, job.Model);
        var (input, inputLength) = await InputValueAsync(job.Id, submission.Input).ConfigureAwait(false);
        if (cache is not null)
        {
            var (created, done) = await CreateCachedAsync(job, submission, input, inputLength, cache, stored, activity).ConfigureAwait(false);
            if (done)
            {
                return created;
            }

            job = created;
        }
        else
        {
            try
            {
                await store.CreateAsync(job, input, inputLength).ConfigureAwait(false);
            }
            catch when (submission.Input.Blob is not null)
            {
                await blobs.DeleteAsync(BlobNames.Input(job.Id), CancellationToken.None).ConfigureAwait(false);
                throw;
            }
        }

        if (stored is not null && cache is null)
        {
            try
            {
                await stored(job.Id).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                activity.Fail(ex);
                await store.DeleteAsync(job.Id, tenantId).ConfigureAwait(false);
                throw;
            }
        }

        try
        {
            await sender.SubmitAsync(new RunInference
            {
                JobId = job.Id,
                TenantId = tenantId,
                Pipeline = submission.Pipeline,
                Model = submission.Model.Name,
                ModelVersion = submission.Model.Version,
                InputKey = RedisJobStore.InputKey(job.Id).ToString(),
                ContentType = submission.ContentType,
                ParamsJson = submission.ParamsJson,
                SubmittedAt = now,
                ExpiresAt = job.ExpiresAt,
                TimeoutSeconds = submission.TimeoutSeconds,
                Priority = priority,
                TraceParent = job.TraceParent,
            }, submission.Model, submission.Model.LaneQueue(priority)).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogPublishFailed(logger, job.Id, ex.Message);
            activity.Fail(ex);
            await store.DeleteAsync(job.Id, tenantId).ConfigureAwait(false);
            throw new BrokerUnavailableException("The broker did not confirm the job.", ex);
        }

        Submitted.WithLabels(submission.Pipeline, submission.Model.Id).Inc();
        return job;
    }

    /// <summary>
    /// Stores a job of the result cache: a hit (succeeded at once) or a follower (of the job computing
    /// the same output) is done, with no message; a leader goes on to be sent. <paramref name="stored"/>
    /// is called for each, and a job it fails for is removed.
    /// </summary>
    private async Task<(JobRecord Job, bool Done)> CreateCachedAsync(
        JobRecord job, Submission submission, byte[] input, long inputLength, CacheTicket cache, Func<string, Task>? stored, Activity? activity)
    {
        CachedCreate outcome;
        try
        {
            outcome = await store.CreateCachedAsync(job, input, cache,
            [
                ("content_type", submission.ContentType),
                ("params", submission.ParamsJson ?? string.Empty),
                ("timeout_seconds", submission.TimeoutSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                ("queue", submission.Model.LaneQueue(JobPriorities.OrNormal(job.Priority))),
            ], inputLength).ConfigureAwait(false);
        }
        catch when (submission.Input.Blob is not null)
        {
            await blobs.DeleteAsync(BlobNames.Input(job.Id), CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        if (outcome is CachedCreate.Hit && submission.Input.Blob is not null)
        {
            // Served from the cache: the input is never read (the script stored no reference to it).
            await blobs.DeleteAsync(BlobNames.Input(job.Id), CancellationToken.None).ConfigureAwait(false);
        }

        Cache.ResultCache.Count(submission, outcome);
        activity?.SetTag("serving.cache", outcome switch { CachedCreate.Hit => "hit", CachedCreate.Follow => "follow", _ => "miss" });
        if (stored is not null)
        {
            try
            {
                await stored(job.Id).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                activity.Fail(ex);
                await store.DeleteAsync(job.Id, job.TenantId).ConfigureAwait(false);
                throw;
            }
        }

        if (outcome is CachedCreate.Lead)
        {
            return (job with { Cache = "miss" }, false);
        }

        Submitted.WithLabels(submission.Pipeline, submission.Model.Id).Inc();
        // What the script stored (a hit's output and times; a follower's link to its leader).
        return (await store.GetAsync(job.Id).ConfigureAwait(false) ?? job with { Cache = "miss" }, true);
    }

    /// <summary>
    /// What the job's input key will hold, and the input's size: the bytes of an inline input, or a
    /// reference to the staged blob, moved to the job's own name first (so the blob sweep can tell
    /// whether a job references it, from its name alone).
    /// </summary>
    private async Task<(byte[] Value, long Length)> InputValueAsync(string jobId, StagedInput input)
    {
        if (input.Blob is not { } staged)
        {
            return (input.Bytes!, input.Length);
        }

        var name = BlobNames.Input(jobId);
        if (!await blobs.MoveAsync(staged, name, CancellationToken.None).ConfigureAwait(false))
        {
            throw new InvalidOperationException($"The staged input {staged} is gone from the blob store.");
        }

        return (BlobReference.Encode(name), input.Length);
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Publish of job {JobId} failed, job removed: {Reason}")]
    private static partial void LogPublishFailed(ILogger logger, string jobId, string reason);
}
