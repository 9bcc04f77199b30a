using System.Diagnostics;
using Async.Serving.Blobs;
using Async.Serving.Breakers;
using Async.Serving.Contracts;
using Async.Serving.Models;
using Async.Serving.Hosting;
using Async.Serving.Jobs;
using Async.Serving.Worker.Inference;
using Async.Serving.Worker.Observability;
using Async.Serving.Worker.Priorities;
using MassTransit;
using Microsoft.Extensions.Options;
using Prometheus;

namespace Async.Serving.Worker.Consumers;

/// <summary>
/// Runs one job. The message is acknowledged only after the outcome is in the job store, so a
/// worker that dies mid-job leaves the message to be redelivered; a redelivery of a job that has
/// already finished changes nothing. The consumer publishes no events: each change it asks of the
/// store appends its own event to the store's outbox in the same step (<see cref="RedisJobStore"/>).
/// An input in the blob store is read from there, an output larger than <c>Serving:Blobs:InlineThreshold</c>
/// is written there, and the job's blobs are deleted once this worker ended the job (docs/blobs.md).
/// </summary>
internal sealed partial class RunInferenceConsumer(
    RedisJobStore store,
    IBlobStore blobs,
    IOptions<BlobOptions> blobOptions,
    PipelineRegistry pipelines,
    ModelRepository repository,
    ModelBreakers breakers,
    JobCancellations cancellations,
    WorkerHeartbeat heartbeat,
    IOptions<WorkerOptions> options,
    PriorityGates gates,
    TimeProvider clock,
    ILogger<RunInferenceConsumer> logger) : IConsumer<RunInference>
{
    public Task Consume(ConsumeContext<RunInference> context) => RunAsync(context.Message, context.CancellationToken);

    /// <summary>
    /// Runs one job, of a message of its own or of a <see cref="RunInferenceBatch"/>
    /// (<see cref="RunInferenceBatchConsumer"/>); <paramref name="stopping"/> is the consume's token,
    /// cancelled when the worker stops. Throws only for an infrastructure failure (the message is retried).
    /// </summary>
    public async Task RunAsync(RunInference job, CancellationToken stopping)
    {
        var modelId = ModelIdOf(job);
        using var scope = logger.BeginJobScope(job.JobId, job.TenantId, modelId);
        // One of the model's in-flight slots, shared by its priority lanes and granted by priority
        // (docs/priorities.md); taken before anything else, so started_at follows the grant order.
        using var slot = await gates.AcquireAsync(modelId, job.Priority, stopping).ConfigureAwait(false);
        // The TTL bounds the wait in the queue only: a redelivered job that was already running goes on.
        if (job.ExpiresAt is { } expiresAt && clock.GetUtcNow() > expiresAt && await store.ExpireAsync(job.JobId).ConfigureAwait(false))
        {
            LogExpired(logger, job.JobId);
            return;
        }

        using var cancel = cancellations.Register(job.JobId);
        // The model's breakers are read alongside the start script, so the job waits once for both;
        // only a breaker that is not closed costs a step of its own (UnavailableAsync).
        var breakerIds = BreakerIdsOf(modelId);
        var breakerReads = breakers.ReadAhead(breakerIds);
        var start = await store.TryStartAsync(job.JobId, heartbeat.WorkerId).ConfigureAwait(false);
        if (!start.Started)
        {
            breakerReads.Abandon();
            // Finished, cancelled or expired before this delivery: nothing to run. A cancel request
            // left by a worker that died ends the job here (the start script announced it).
            LogSkipped(logger, job.JobId, start.Status);
            return;
        }

        // Whatever ends the job from here (success, failure, cancel), an input blob goes with the reference the end removed.
        var blob = start.Input is { } stored ? BlobReference.Decode(stored) : null;
        var ended = false;
        try
        {
            ended = await RunStartedAsync(job, stopping, modelId, start, breakerIds, breakerReads, cancel.Token).ConfigureAwait(false);
        }
        finally
        {
            if (ended && blob is not null)
            {
                await DeleteBlobAsync(blob).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Runs a started job and writes its outcome; true when this worker ended the job (its outcome was written).</summary>
    private async Task<bool> RunStartedAsync(
        RunInference job, CancellationToken stopping, string modelId, StartOutcome start,
        IReadOnlyList<string> breakerIds, BreakerReads breakerReads, CancellationToken cancelToken)
    {
        if (start.Attempt > options.Value.MaxAttempts)
        {
            return await FailAsync(job, JobErrorCodes.InternalError,
                $"The job was delivered {start.Attempt} times without finishing (a worker stopped while running it).", null).ConfigureAwait(false);
        }

        // The pipeline that runs this job on this worker's model; null when it serves no such model.
        var pipeline = pipelines.Find(job.Pipeline, modelId);
        if (pipeline is null)
        {
            return await FailAsync(job, "unknown_model", $"This worker does not serve {modelId} for {job.Pipeline}.", null).ConfigureAwait(false);
        }

        if (!await breakerReads.AllClosedAsync().ConfigureAwait(false) && await UnavailableAsync(breakerIds, stopping).ConfigureAwait(false) is { } unavailable)
        {
            return await FailAsync(job, JobErrorCodes.ModelUnavailable, unavailable, null).ConfigureAwait(false);
        }

        if (start.Input is null)
        {
            return await FailAsync(job, JobErrorCodes.InputMissing, "The job's input is no longer stored (it expired before a worker took the job).", null).ConfigureAwait(false);
        }

        var input = JobInputSource.FromStored(start.Input, blobs);
        WorkerMetrics.QueueDelay.WithLabels(job.Pipeline, modelId).Observe(Math.Max(0, (start.At - job.SubmittedAt).TotalSeconds));
        using var inFlight = WorkerMetrics.InFlight.WithLabels(job.Pipeline, modelId).TrackInProgress();
        var timeout = TimeSpan.FromSeconds(job.TimeoutSeconds > 0 ? job.TimeoutSeconds : options.Value.DefaultTimeoutSeconds);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping, cancelToken);
        deadline.CancelAfter(timeout);
        var began = Stopwatch.GetTimestamp();
        string output;
        try
        {
            var progress = new ProgressReporter(store, job.JobId, heartbeat.WorkerId, options.Value.ProgressInterval, clock);
            output = await InferAsync(pipeline, input, job, progress, deadline.Token).ConfigureAwait(false);
        }
        catch (JobFailureException ex)
        {
            return await FailAsync(job, ex.Code, ex.Message, Elapsed(began)).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancelToken.IsCancellationRequested)
        {
            var executed = Elapsed(began);
            if (await WriteResultAsync(JobStatuses.Cancelled, () => store.MarkCancelledAsync(job.JobId, executed)).ConfigureAwait(false))
            {
                WorkerMetrics.Jobs.WithLabels(job.Pipeline, modelId, JobStatuses.Cancelled).Inc();
                LogCancelled(logger, job.JobId);
                return true;
            }

            return false;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !stopping.IsCancellationRequested)
        {
            return await FailAsync(job, JobErrorCodes.Timeout, $"The job ran longer than its timeout of {timeout.TotalSeconds:F0} s.", Elapsed(began)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException && !stopping.IsCancellationRequested && start.Attempt >= options.Value.MaxAttempts)
        {
            // An unexpected error on the last attempt allowed: the job ends here, naming it, rather than
            // being retried into a start that could only fail it as if a worker had died. Earlier
            // attempts rethrow (a Redis or broker blip is retried). The message names the exception's
            // type only; its text, which can name hosts and paths, goes to the worker's log.
            LogUnexpected(logger, ex, job.JobId, start.Attempt, options.Value.MaxAttempts);
            return await FailAsync(job, JobErrorCodes.InternalError,
                $"Running the job failed with an unexpected error in the worker ({ex.GetType().Name}) on its last attempt ({start.Attempt} of {options.Value.MaxAttempts}); the worker's log has the details.",
                Elapsed(began)).ConfigureAwait(false);
        }

        var executionMs = Elapsed(began);
        WorkerMetrics.Execution.WithLabels(job.Pipeline, modelId).Observe(executionMs / 1000.0);
        var stored = await StoreOutputAsync(job.JobId, output, stopping).ConfigureAwait(false);
        if (!await WriteResultAsync(JobStatuses.Succeeded, () => store.CompleteAsync(job.JobId, stored, executionMs)).ConfigureAwait(false))
        {
            if (!ReferenceEquals(stored, output))
            {
                await DeleteBlobAsync(BlobNames.Output(job.JobId)).ConfigureAwait(false);
            }

            LogSkipped(logger, job.JobId, "no longer running");
            return false;
        }

        WorkerMetrics.Jobs.WithLabels(job.Pipeline, modelId, JobStatuses.Succeeded).Inc();
        return true;
    }

    /// <summary>
    /// What the job's result key will hold: the output itself, or, for one larger than the inline
    /// threshold, a reference to the blob <c>outputs/{id}</c> it is written to first.
    /// </summary>
    private async Task<string> StoreOutputAsync(string jobId, string output, CancellationToken cancellationToken)
    {
        var threshold = blobOptions.Value.InlineThreshold;
        // A char is 1 to 3 UTF-8 bytes: only an output that might pass the threshold is counted.
        if ((long)output.Length * 3 <= threshold || System.Text.Encoding.UTF8.GetByteCount(output) <= threshold)
        {
            return output;
        }

        var name = BlobNames.Output(jobId);
        var writer = await blobs.OpenWriteAsync(name, cancellationToken).ConfigureAwait(false);
        await using (writer.ConfigureAwait(false))
        {
            var text = new StreamWriter(writer, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false), 64 * 1024, leaveOpen: true);
            await using (text.ConfigureAwait(false))
            {
                await text.WriteAsync(output.AsMemory(), cancellationToken).ConfigureAwait(false);
            }

            await writer.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        return BlobReference.EncodeText(name);
    }

    /// <summary>Deletes a blob this worker no longer needs; one that cannot be deleted is left to the API's blob sweep.</summary>
    private async Task DeleteBlobAsync(string name)
    {
        try
        {
            await blobs.DeleteAsync(name, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogBlobKept(logger, name, ex.Message);
        }
    }

    /// <summary>The breakers a job of <paramref name="modelId"/> needs closed: its model version's, and those of the models it runs through (a video model's embedding and OCR models).</summary>
    private List<string> BreakerIdsOf(string modelId) =>
        repository.Resolve(modelId) is { } entry ? [modelId, .. repository.Dependencies(entry).Select(d => d.Id)] : [modelId];

    /// <summary>
    /// Why the job must not run now, or null: the circuit breaker of one of <paramref name="ids"/>
    /// (<see cref="BreakerIdsOf"/>) is open, or another job probes it.
    /// </summary>
    private async Task<string?> UnavailableAsync(IReadOnlyList<string> ids, CancellationToken cancellationToken)
    {
        foreach (var id in ids)
        {
            var permit = await breakers.AcquireAsync(id, cancellationToken).ConfigureAwait(false);
            if (permit.Decision == BreakerDecision.Reject)
            {
                return $"Model {id} is unavailable: its recent batches all failed, and it is tried again after "
                    + $"{permit.RetryAt?.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture) ?? "its cool-down"}. The job was not run.";
            }
        }

        return null;
    }

    /// <summary>The model's id in the repository (<c>name@version</c>), as metrics, logs and spans name it.</summary>
    private static string ModelIdOf(RunInference job) => $"{job.Model}@{job.ModelVersion}";

    private static long Elapsed(long began) => (long)Stopwatch.GetElapsedTime(began).TotalMilliseconds;

    private async Task<bool> FailAsync(RunInference job, string code, string message, long? executionMs)
    {
        LogFailed(logger, job.JobId, code, message);
        WorkerMetrics.Jobs.WithLabels(job.Pipeline, ModelIdOf(job), JobStatuses.Failed).Inc();
        return await WriteResultAsync(JobStatuses.Failed, () => store.FailAsync(job.JobId, code, message, executionMs)).ConfigureAwait(false);
    }

    /// <summary>
    /// The pipeline's run as the job's <c>job.inference</c> span (under MassTransit's consume span):
    /// the batches its items join link back to it (<see cref="Batching.DynamicBatcher"/>).
    /// </summary>
    private static async Task<string> InferAsync(IPipeline pipeline, JobInputSource input, RunInference job, IJobProgress progress, CancellationToken cancellationToken)
    {
        using var activity = ServingTelemetry.Source.StartActivity("job.inference");
        activity?.SetTag(ServingTelemetry.JobIdTag, job.JobId);
        activity?.SetTag(ServingTelemetry.PipelineTag, job.Pipeline);
        activity?.SetTag(ServingTelemetry.ModelTag, ModelIdOf(job));
        try
        {
            return await pipeline.RunAsync(ModelIdOf(job), input, job, progress, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            activity.Fail(ex);
            throw;
        }
    }

    /// <summary>The outcome's write to the job store (result, state and outbox event in one script) as the <c>job.result.write</c> span.</summary>
    private static async Task<bool> WriteResultAsync(string status, Func<Task<bool>> write)
    {
        using var activity = ServingTelemetry.Source.StartActivity("job.result.write");
        activity?.SetTag(ServingTelemetry.OutcomeTag, status);
        return await write().ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Job {JobId} expired in the queue")]
    private static partial void LogExpired(ILogger logger, string jobId);

    [LoggerMessage(EventId = 201, Level = LogLevel.Information, Message = "Job {JobId} not run: {Status}")]
    private static partial void LogSkipped(ILogger logger, string jobId, string status);

    [LoggerMessage(EventId = 203, Level = LogLevel.Information, Message = "Job {JobId} cancelled while running")]
    private static partial void LogCancelled(ILogger logger, string jobId);

    [LoggerMessage(EventId = 204, Level = LogLevel.Warning, Message = "Blob {Blob} not deleted (the API's blob sweep will): {Reason}")]
    private static partial void LogBlobKept(ILogger logger, string blob, string reason);

    [LoggerMessage(EventId = 205, Level = LogLevel.Error, Message = "Job {JobId} failed with an unexpected error on attempt {Attempt} of {MaxAttempts}")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string jobId, int attempt, int maxAttempts);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "Job {JobId} failed: {Code}: {Message}")]
    private static partial void LogFailed(ILogger logger, string jobId, string code, string message);
}
