using System.Collections.Concurrent;
using System.Diagnostics;
using Async.Serving.Contracts;
using Async.Serving.Messaging;
using Async.Serving.Models;
using MassTransit;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Jobs;

/// <summary>
/// Sends job messages to their queues and waits for the broker's confirm, committing the submits
/// of one queue in groups: a submit that finds no send in flight to its queue sends its job at once,
/// in a <see cref="RunInference"/> of its own; submits that arrive while a send is in flight wait,
/// and the next send carries them (up to the model's limit, <see cref="JobsPerMessage"/>) in one
/// <see cref="RunInferenceBatch"/>; a whole message's worth goes at once, beside the sends in flight
/// (<see cref="Lane"/>). A lone submit therefore costs what it did before, and under
/// load the broker, the API and the worker handle one message for several jobs (docs/worker.md,
/// "Jobs per message"). Each submit learns whether its own job was confirmed: a send that fails or
/// times out fails every submit it carried, and each removes its job (<see cref="JobPublisher"/>).
/// </summary>
internal sealed partial class JobSender(
    ISendEndpointProvider sendEndpoints,
    JobQueueDeclarer queues,
    IOptions<JobLimitsOptions> limits,
    ILogger<JobSender> logger)
{
    private static readonly Prometheus.Counter Messages = Prometheus.Metrics.CreateCounter(
        "serving_api_job_messages_total", "Messages the API sent to the job queues for submits (each carries one or more jobs; see serving_api_jobs_submitted_total).",
        new Prometheus.CounterConfiguration { LabelNames = ["model"] });

    private static readonly Prometheus.Histogram SendWait = Prometheus.Metrics.CreateHistogram(
        "serving_api_job_send_seconds", "From a submit handing its job to the sender until the broker confirmed the message carrying it: the wait for a send in flight, the send and the confirm.",
        new Prometheus.HistogramConfiguration { LabelNames = ["model"], Buckets = Prometheus.Histogram.ExponentialBuckets(0.00025, 2, 13) });

    private readonly ConcurrentDictionary<string, Lane> _lanes = new(StringComparer.Ordinal);

    /// <summary>
    /// How many jobs one message to <paramref name="model"/>'s queues may carry: up to
    /// <see cref="JobLimitsOptions.MaxJobsPerMessage"/>, and no more than one batch of the model
    /// (a worker prefetches messages, so each message it holds is at most one batch of jobs);
    /// one for OCR and video models, whose jobs each hold many batch slots for long.
    /// </summary>
    public int JobsPerMessage(ModelEntry model) =>
        model.Config.Ocr is not null || model.Config.Video is not null ? 1 : Math.Min(limits.Value.MaxJobsPerMessage, model.Config.MaxBatchSize);

    /// <summary>Sends a submitted job to <paramref name="queue"/>, with the submits that wait for the same queue; completes when the broker confirmed its message.</summary>
    public async Task SubmitAsync(RunInference message, ModelEntry model, string queue)
    {
        var began = Stopwatch.GetTimestamp();
        await _lanes.GetOrAdd(queue, static (q, state) => state.Sender.LaneOf(q, state.Model), (Sender: this, Model: model)).SendAsync(message).ConfigureAwait(false);
        SendWait.WithLabels(model.Id).Observe(Stopwatch.GetElapsedTime(began).TotalSeconds);
    }

    private Lane LaneOf(string queue, ModelEntry model)
    {
        var modelId = model.Id;
        return new Lane(async jobs =>
        {
            if (jobs.Count == 1)
            {
                await SendAsync(jobs[0], queue).ConfigureAwait(false);
            }
            else
            {
                await SendAsync(new RunInferenceBatch { Jobs = jobs }, queue).ConfigureAwait(false);
            }

            Messages.WithLabels(modelId).Inc();
        }, queue, JobsPerMessage(model), () => limits.Value.PublishTimeout, logger);
    }

    /// <summary>
    /// Sends one message to <paramref name="queue"/> (declared first, as a quorum queue) and waits for
    /// the broker's confirm, within <see cref="JobLimitsOptions.PublishTimeout"/>. Throws when the
    /// broker did not take it; a returned message (the queue was deleted) makes the next send declare
    /// the queue again. The one way a job's message is sent: for submits (in <see cref="SubmitAsync"/>'s
    /// groups), and alone for an operator's requeue and a released cache follower.
    /// </summary>
    public async Task SendAsync<T>(T message, string queue)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(message);
        try
        {
            using var timeout = new CancellationTokenSource(limits.Value.PublishTimeout);
            await queues.EnsureDeclaredAsync(queue, timeout.Token).ConfigureAwait(false);
            var endpoint = await sendEndpoints.GetSendEndpoint(JobQueues.SendAddress(queue)).ConfigureAwait(false);
            await endpoint.Send(message, Pipe.Execute<SendContext<T>>(Mandatory), timeout.Token).ConfigureAwait(false);
        }
        catch (MessageReturnedException)
        {
            queues.Forget(queue);
            throw;
        }
    }

    private static void Mandatory(SendContext context)
    {
        if (context.TryGetPayload(out RabbitMqSendContext? rabbit))
        {
            rabbit.Mandatory = true;
        }
    }

    /// <summary>
    /// The submits waiting for one queue, and the sends to it in flight: <paramref name="send"/> sends
    /// one message with the jobs given (in submit order) and completes when the broker confirmed it.
    /// A send starts when none is in flight, or when a whole message's worth waits and fewer than
    /// <see cref="MaxInFlight"/> are: so jobs wait for a confirm only to go with others, and a queue's
    /// rate is never bound by one confirm at a time. With one job per message every submit sends at once.
    /// </summary>
    internal sealed class Lane(Func<IReadOnlyList<RunInference>, Task> send, string queue, int perMessage, Func<TimeSpan> publishTimeout, ILogger logger)
    {
        /// <summary>Most sends to one queue in flight at once when whole messages wait.</summary>
        public const int MaxInFlight = 4;

        private readonly Lock _lock = new();
        private readonly Queue<Pending> _waiting = new();
        private int _inFlight;

        public Task SendAsync(RunInference message)
        {
            if (perMessage == 1)
            {
                return send([message]);
            }

            var pending = new Pending(message, Stopwatch.GetTimestamp());
            bool lead;
            lock (_lock)
            {
                _waiting.Enqueue(pending);
                lead = _inFlight == 0 || (_waiting.Count >= perMessage && _inFlight < MaxInFlight);
                if (lead)
                {
                    _inFlight++;
                }
            }

            if (lead)
            {
                // This submit sends now, on its own task, with whatever else waits by then; when its
                // send ends with more waiting, the rest go on a task of their own.
                _ = LeadAsync();
            }

            return pending.Confirmed.Task;
        }

        private async Task LeadAsync()
        {
            await SendRoundAsync().ConfigureAwait(false);
            if (Next())
            {
                _ = Task.Run(DrainAsync);
            }
        }

        private async Task DrainAsync()
        {
            do
            {
                await SendRoundAsync().ConfigureAwait(false);
            }
            while (Next());
        }

        /// <summary>
        /// After a send: true when this sender goes on with another (jobs wait and no other send in
        /// flight will take them, or a whole message's worth waits); otherwise it is no longer in flight.
        /// </summary>
        private bool Next()
        {
            lock (_lock)
            {
                if (_waiting.Count > 0 && (_inFlight == 1 || _waiting.Count >= perMessage))
                {
                    return true;
                }

                _inFlight--;
                return false;
            }
        }

        /// <summary>One message with the oldest waiting submits; never throws (each submit gets its outcome).</summary>
        private async Task SendRoundAsync()
        {
            var round = new List<Pending>(Math.Min(perMessage, 64));
            var timeout = publishTimeout();
            lock (_lock)
            {
                while (round.Count < perMessage && _waiting.TryDequeue(out var next))
                {
                    round.Add(next);
                }
            }

            // A submit that waited its whole publish timeout behind a send that hung is not sent late.
            round.RemoveAll(p =>
            {
                if (Stopwatch.GetElapsedTime(p.Since) < timeout)
                {
                    return false;
                }

                p.Confirmed.TrySetException(new TimeoutException($"No send to {queue} was confirmed within {timeout.TotalSeconds:0.#} s."));
                return true;
            });
            if (round.Count == 0)
            {
                return;
            }

            try
            {
                await send([.. round.Select(p => p.Message)]).ConfigureAwait(false);
                foreach (var pending in round)
                {
                    pending.Confirmed.TrySetResult();
                }
            }
            catch (Exception ex)
            {
                LogSendFailed(logger, queue, round.Count, ex.Message);
                foreach (var pending in round)
                {
                    pending.Confirmed.TrySetException(ex);
                }
            }
        }
    }

    /// <summary>A submit waiting for its job's message to be confirmed; its continuation runs on its own (not on the round's task).</summary>
    private sealed record Pending(RunInference Message, long Since)
    {
        public TaskCompletionSource Confirmed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    [LoggerMessage(EventId = 305, Level = LogLevel.Warning, Message = "Send of {Count} job(s) to {Queue} failed: {Reason}")]
    private static partial void LogSendFailed(ILogger logger, string queue, int count, string reason);
}
