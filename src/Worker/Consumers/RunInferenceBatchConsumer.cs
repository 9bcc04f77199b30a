using System.Diagnostics;
using Async.Serving.Contracts;
using Async.Serving.Hosting;
using MassTransit;

namespace Async.Serving.Worker.Consumers;

/// <summary>
/// Runs the jobs of a <see cref="RunInferenceBatch"/>, each exactly as <see cref="RunInferenceConsumer"/>
/// runs a job of its own (its priority slot, its start and outcome in the job store, its failure
/// ending it alone), all at once. The message is acknowledged when every job has returned; when one
/// threw (Redis or the broker blinked), the others still finish first, and the retry or redelivery
/// finds them ended and skips them (the start script only starts a queued job).
/// </summary>
internal sealed class RunInferenceBatchConsumer(RunInferenceConsumer jobs) : IConsumer<RunInferenceBatch>
{
    public Task Consume(ConsumeContext<RunInferenceBatch> context)
    {
        var batch = context.Message.Jobs;
        var runs = new Task[batch.Count];
        for (var i = 0; i < runs.Length; i++)
        {
            runs[i] = RunInItsTraceAsync(batch[i], context.CancellationToken);
        }

        return Task.WhenAll(runs);
    }

    /// <summary>
    /// One job under a <c>job.consume</c> span in the job's own trace (its submit's, carried in the
    /// message), as a job of a message of its own runs under MassTransit's consume span in its trace.
    /// </summary>
    private async Task RunInItsTraceAsync(RunInference job, CancellationToken stopping)
    {
        using var activity = ServingTelemetry.StartFromStored("job.consume", job.TraceParent, ActivityKind.Consumer);
        activity?.SetTag(ServingTelemetry.JobIdTag, job.JobId);
        try
        {
            await jobs.RunAsync(job, stopping).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            activity.Fail(ex);
            throw;
        }
    }
}
