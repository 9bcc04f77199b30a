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
/// </summary>
public static class JobQueues
{
    public const string QueueType = "quorum";

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
