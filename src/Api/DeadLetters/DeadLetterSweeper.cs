using System.Text;
using System.Text.Json;
using Async.Serving.Jobs;
using Async.Serving.Messaging;
using Async.Serving.Models;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Async.Serving.Api.DeadLetters;

/// <summary>
/// Ends the jobs whose messages MassTransit gave up on. A message a worker could not consume (it
/// threw after its retries, or it could not be deserialized) lands in <c>{queue}_error</c>; one no
/// consumer matched in <c>{queue}_skipped</c>, for each priority lane's queue (<c>infer-…-1.high_error</c>). Left there, its job would wait <c>queued</c> or
/// <c>running</c> until Redis expired it. Every <see cref="DeadLetterOptions.SweepInterval"/>, this
/// takes each such message, keeps it (<see cref="DeadLetterStore"/>, for a requeue from the
/// dashboard), ends the job <c>failed</c> with code <c>dead_letter</c> and a message saying where and
/// why (the job store writes the webhook event with it), and only then acknowledges the message. A
/// message that names no job is moved to <see cref="DeadLetterOptions.UnreadableQueue"/>, never dropped.
/// The queues are read with RabbitMQ's client directly: MassTransit's own endpoints would try, and
/// fail, to deserialize exactly the messages that are here because they do not deserialize.
/// </summary>
public sealed partial class DeadLetterSweeper(
    ModelRepository models,
    RedisJobStore store,
    DeadLetterStore deadLetters,
    IOptions<RabbitMqOptions> rabbit,
    IOptions<DeadLetterOptions> options,
    TimeProvider clock,
    ILogger<DeadLetterSweeper> logger) : BackgroundService
{
    public const string Code = "dead_letter";

    public static readonly string[] Suffixes = ["_error", "_skipped"];

    private static readonly Prometheus.Counter Swept = Prometheus.Metrics.CreateCounter(
        "serving_dead_letters_total", "Dead-lettered job messages taken by the sweeper, by outcome.",
        new Prometheus.CounterConfiguration { LabelNames = ["outcome"] });

    private IConnection? _connection;
    private IChannel? _channel;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await SweepAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogSweepFailed(logger, ex.Message);
                await CloseAsync().ConfigureAwait(false);
            }

            try
            {
                await Task.Delay(options.Value.SweepInterval, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Looks once at every model's dead-letter queues; returns the messages taken.</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var taken = 0;
        foreach (var queue in models.All.SelectMany(m => m.LaneQueues).SelectMany(lane => Suffixes.Select(s => lane + s)))
        {
            taken += await DrainAsync(queue, cancellationToken).ConfigureAwait(false);
        }

        return taken;
    }

    private async Task<int> DrainAsync(string queue, CancellationToken cancellationToken)
    {
        var channel = await ChannelAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await channel.QueueDeclarePassiveAsync(queue, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
        {
            // MassTransit declares a dead-letter queue with its first message: none yet. The broker
            // closed the channel with the 404; the next queue gets a new one (one round trip).
            await CloseChannelAsync().ConfigureAwait(false);
            return 0;
        }

        var taken = 0;
        try
        {
            while (taken < options.Value.MaxPerQueue && await channel.BasicGetAsync(queue, autoAck: false, cancellationToken).ConfigureAwait(false) is { } message)
            {
                // Not cancelled by shutdown half-way: a message taken is handled and acknowledged, or left
                // unacknowledged (the broker gives it back when the channel closes) if handling threw.
                await HandleAsync(queue, message, channel).ConfigureAwait(false);
                await channel.BasicAckAsync(message.DeliveryTag, multiple: false, CancellationToken.None).ConfigureAwait(false);
                taken++;
            }
        }
        catch (OperationInterruptedException ex)
        {
            // The broker closed the channel over this queue (a queue declared a moment ago may answer
            // "noproc" until its process is up): its messages wait for the next sweep; the other
            // queues go on now, on a new channel.
            LogQueueInterrupted(logger, queue, ex.Message);
            await CloseChannelAsync().ConfigureAwait(false);
        }

        return taken;
    }

    private async Task HandleAsync(string queue, BasicGetResult message, IChannel channel)
    {
        var headers = message.BasicProperties.Headers;
        var reason = Header(headers, "MT-Fault-Message") ?? Header(headers, "MT-Reason") ?? "no reason was recorded";
        if (Header(headers, "MT-Fault-ExceptionType") is { } type)
        {
            reason = $"{type}: {reason}";
        }

        reason = reason.Length > 500 ? reason[..500] + "…" : reason;
        var jobs = ReadJobs(message.Body);
        if (jobs.Count == 0)
        {
            await ParkAsync(message, channel).ConfigureAwait(false);
            Swept.WithLabels("unreadable").Inc();
            LogUnreadable(logger, queue, options.Value.UnreadableQueue);
            return;
        }

        // A message of several jobs (RunInferenceBatch): each ends, is kept and can be requeued on its own.
        foreach (var (jobId, messageJson) in jobs)
        {
            await EndAsync(queue, reason, jobId, messageJson).ConfigureAwait(false);
        }
    }

    private async Task EndAsync(string queue, string reason, string jobId, string messageJson)
    {
        await deadLetters.SaveAsync(new DeadLetterRecord(jobId, queue, reason, clock.GetUtcNow(), messageJson)).ConfigureAwait(false);
        var text = $"The job's message could not be processed and was moved to {queue}: {reason}";
        if (await store.FailDeadLetteredAsync(jobId, Code, text).ConfigureAwait(false))
        {
            Swept.WithLabels("failed").Inc();
            LogEnded(logger, jobId, queue, reason);
            return;
        }

        // Already ended (or gone): nothing to end. The record stays only where a requeue could help.
        if (await store.GetAsync(jobId, includeOutput: false).ConfigureAwait(false) is not { Status: JobStatuses.Failed })
        {
            await deadLetters.RemoveAsync(jobId).ConfigureAwait(false);
        }

        Swept.WithLabels("already_ended").Inc();
        LogAlreadyEnded(logger, jobId, queue);
    }

    /// <summary>
    /// The jobs a dead-lettered message names, each with its own message JSON (a <c>RunInference</c>):
    /// one for a MassTransit envelope of a job (or a raw JSON message), each of a <c>RunInferenceBatch</c>'s
    /// <c>jobs</c>; none when it names none. A batch with one job that names none counts as unreadable whole.
    /// </summary>
    internal static IReadOnlyList<(string JobId, string MessageJson)> ReadJobs(ReadOnlyMemory<byte> body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            var message = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("message", out var inner) && inner.ValueKind == JsonValueKind.Object ? inner : root;
            if (message.ValueKind == JsonValueKind.Object && message.TryGetProperty("jobs", out var batch) && batch.ValueKind == JsonValueKind.Array)
            {
                var jobs = new List<(string, string)>(batch.GetArrayLength());
                foreach (var job in batch.EnumerateArray())
                {
                    if (JobOf(job) is not { } one)
                    {
                        return [];
                    }

                    jobs.Add(one);
                }

                return jobs;
            }

            return JobOf(message) is { } single ? [single] : [];
        }
        catch (JsonException)
        {
            return [];
        }
    }

    private static (string JobId, string MessageJson)? JobOf(JsonElement message) =>
        message.ValueKind == JsonValueKind.Object
        && message.TryGetProperty("jobId", out var id) && id.ValueKind == JsonValueKind.String
        && id.GetString() is { Length: > 0 and <= 64 } jobId && jobId.All(char.IsAsciiLetterOrDigit)
            ? (jobId, message.GetRawText())
            : null;

    private async Task ParkAsync(BasicGetResult message, IChannel channel)
    {
        var target = options.Value.UnreadableQueue;
        await channel.QueueDeclareAsync(target, durable: true, exclusive: false, autoDelete: false, arguments: null).ConfigureAwait(false);
        var properties = new BasicProperties(message.BasicProperties) { Persistent = true };
        await channel.BasicPublishAsync(string.Empty, target, mandatory: true, properties, message.Body).ConfigureAwait(false);
    }

    private static string? Header(IDictionary<string, object?>? headers, string name) =>
        headers is not null && headers.TryGetValue(name, out var value) ? value switch
        {
            byte[] bytes => Encoding.UTF8.GetString(bytes),
            null => null,
            var other => other.ToString(),
        } : null;

    private async Task<IChannel> ChannelAsync(CancellationToken cancellationToken)
    {
        if (_channel is { IsOpen: true })
        {
            return _channel;
        }

        if (_connection is not { IsOpen: true })
        {
            await CloseAsync().ConfigureAwait(false);
            var factory = rabbit.Value.ConnectionFactory("async-serving-dead-letter-sweeper");
            _connection = await factory.CreateConnectionAsync(cancellationToken).ConfigureAwait(false);
        }

        // Confirms on: a message parked in the unreadable queue is acknowledged only once the broker has it.
        _channel = await _connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken).ConfigureAwait(false);
        return _channel;
    }

    private async Task CloseChannelAsync()
    {
        if (_channel is { } channel)
        {
            _channel = null;
            await channel.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task CloseAsync()
    {
        await CloseChannelAsync().ConfigureAwait(false);
        if (_connection is { } connection)
        {
            _connection = null;
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        await CloseAsync().ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 730, Level = LogLevel.Warning, Message = "Job {JobId} failed dead_letter: its message was found in {Queue}: {Reason}")]
    private static partial void LogEnded(ILogger logger, string jobId, string queue, string reason);

    [LoggerMessage(EventId = 731, Level = LogLevel.Information, Message = "Dead-lettered message of job {JobId} in {Queue} taken; the job had already ended")]
    private static partial void LogAlreadyEnded(ILogger logger, string jobId, string queue);

    [LoggerMessage(EventId = 732, Level = LogLevel.Error, Message = "A message in {Queue} names no job; moved to {Target}")]
    private static partial void LogUnreadable(ILogger logger, string queue, string target);

    [LoggerMessage(EventId = 735, Level = LogLevel.Warning, Message = "Dead-letter queue {Queue} not read this sweep: {Reason}")]
    private static partial void LogQueueInterrupted(ILogger logger, string queue, string reason);

    [LoggerMessage(EventId = 733, Level = LogLevel.Warning, Message = "Dead-letter sweep failed: {Reason}")]
    private static partial void LogSweepFailed(ILogger logger, string reason);
}
