using MassTransit;
using RabbitMQ.Client;

namespace Async.Serving.Messaging;

/// <summary>
/// The job queues, one per model version (<c>infer-&lt;name&gt;-&lt;version&gt;</c>), are quorum
/// queues: durable, and replicated once RabbitMQ runs as a cluster. RabbitMQ refuses to redeclare a
/// queue with other arguments (PRECONDITION_FAILED, inequivalent arg 'x-queue-type'), so both sides
/// declare it the same way: the worker's receive endpoint through MassTransit, the API through
/// <see cref="JobQueueDeclarer"/> before its first send. The API sends to the exchange of the same
/// name (MassTransit binds it to the queue), because a <c>queue:</c> send address would declare the
/// queue without arguments, as a classic queue.
/// <para>
/// Priorities are lanes, not message priorities: quorum queues on RabbitMQ 3.x have none (4.0 added
/// them, with two levels only). Each model has one quorum queue per priority: the model's queue
/// itself is the normal lane (so queues and messages of builds before priorities keep working), and
/// <c>&lt;queue&gt;.high</c> and <c>&lt;queue&gt;.low</c> beside it. A model or version name cannot
/// hold a '.', so no lane name can be another model's queue. The worker takes the lanes in a weighted
/// order (docs/priorities.md); whatever counts a model's backlog counts all of its lanes.
/// </para>
/// </summary>
public static class JobQueues
{
    public const string QueueType = "quorum";

    /// <summary>The queue of <paramref name="priority"/>'s lane of the model queue <paramref name="queue"/>.</summary>
    public static string Lane(string queue, string priority) => priority switch
    {
        Contracts.JobPriorities.High => queue + ".high",
        Contracts.JobPriorities.Low => queue + ".low",
        _ => queue,
    };

    /// <summary>Every lane of the model queue <paramref name="queue"/>, highest first, with its priority.</summary>
    public static IReadOnlyList<(string Priority, string Queue)> Lanes(string queue) =>
        [.. Contracts.JobPriorities.All.Select(p => (p, Lane(queue, p)))];

    /// <summary>Makes a worker's receive endpoint on a job queue a quorum queue.</summary>
    public static void ConfigureReceiveEndpoint(IRabbitMqReceiveEndpointConfigurator endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        endpoint.SetQuorumQueue();
    }

    /// <summary>Where the API sends a job: the queue's exchange, which declares no queue.</summary>
    public static Uri SendAddress(string queue) => new($"exchange:{queue}");

    /// <summary>
    /// What a MassTransit receive endpoint on <paramref name="queue"/> declares with
    /// <see cref="ConfigureReceiveEndpoint"/>: a durable fanout exchange and a durable quorum queue of
    /// that name, bound together. Idempotent; fails when the queue exists with another type.
    /// </summary>
    public static async Task DeclareAsync(IChannel channel, string queue, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(channel);
        await channel.ExchangeDeclareAsync(queue, ExchangeType.Fanout, durable: true, autoDelete: false,
            cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = QueueType },
            cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.QueueBindAsync(queue, queue, routingKey: "", cancellationToken: cancellationToken).ConfigureAwait(false);
    }
}
