using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using Async.Serving.Messaging;
using Async.Serving.Models;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Async.Serving.Api.Jobs;

/// <summary>Section <c>Serving:Queues</c>.</summary>
public sealed class QueueOptions
{
    public const string Section = "Serving:Queues";

    /// <summary>Ready messages a model's queues may hold (all priority lanes together) before submits get 503 <c>queue_full</c>; 0 means no limit.</summary>
    [Range(0, long.MaxValue)]
    public long MaxDepth { get; set; } = 100_000;

    /// <summary>How long a measured depth is reused, so a burst of submits costs one broker round trip.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan DepthCacheTime { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>What <c>Retry-After</c> says when a queue is full.</summary>
    [Range(1, 3600)]
    public int RetryAfterSeconds { get; set; } = 5;
}

/// <summary>
/// Reads a model queue's depth (each priority lane's, summed) with passive declares on its own broker connection, cached for
/// <see cref="QueueOptions.DepthCacheTime"/>. When the broker cannot be asked, the depth is
/// unknown and submits go on: the publish itself then fails with <c>broker_unavailable</c>.
/// </summary>
internal sealed class QueueDepthProbe(IOptions<RabbitMqOptions> rabbit, IOptions<QueueOptions> options, TimeProvider clock) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, (long Depth, DateTimeOffset At)> _cache = new();
    private readonly SemaphoreSlim _gate = new(1, 1);
    private IConnection? _connection;

    /// <summary>Whether the model's backlog, its ready messages summed over every priority lane, reached <see cref="QueueOptions.MaxDepth"/>.</summary>
    public async Task<bool> IsFullAsync(ModelEntry model, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        var max = options.Value.MaxDepth;
        if (max <= 0)
        {
            return false;
        }

        long depth = 0;
        foreach (var lane in model.LaneQueues)
        {
            depth += await DepthAsync(lane, cancellationToken).ConfigureAwait(false);
        }

        return depth >= max;
    }

    public async Task<long> DepthAsync(string queue, CancellationToken cancellationToken)
    {
        if (Fresh(queue) is { } cached)
        {
            return cached;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (Fresh(queue) is { } again)
            {
                return again;
            }

            long depth;
            try
            {
                _connection ??= await Factory().CreateConnectionAsync(cancellationToken).ConfigureAwait(false);
                await using var channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                depth = (await channel.QueueDeclarePassiveAsync(queue, cancellationToken).ConfigureAwait(false)).MessageCount;
            }
            catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
            {
                depth = 0; // not declared yet: nothing waits in it
            }
            catch (Exception ex) when (ex is BrokerUnreachableException or AlreadyClosedException or OperationInterruptedException or System.Net.Sockets.SocketException)
            {
                await ResetAsync().ConfigureAwait(false);
                return 0;
            }

            _cache[queue] = (depth, clock.GetUtcNow());
            return depth;
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await ResetAsync().ConfigureAwait(false);
        _gate.Dispose();
    }

    private long? Fresh(string queue) =>
        _cache.TryGetValue(queue, out var entry) && clock.GetUtcNow() - entry.At < options.Value.DepthCacheTime ? entry.Depth : null;

    private ConnectionFactory Factory() => rabbit.Value.ConnectionFactory("async-serving-api-queue-depth");

    private async Task ResetAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
            _connection = null;
        }
    }
}
