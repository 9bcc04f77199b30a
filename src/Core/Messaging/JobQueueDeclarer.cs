using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace Async.Serving.Messaging;

/// <summary>
/// Declares each job queue (<see cref="JobQueues.DeclareAsync"/>) once per process before the first
/// send to it, so that a job sent before any worker has started waits in its quorum queue instead
/// of being returned by an exchange with nothing bound. Concurrent first sends share one
/// declaration; a failed one is tried again by the next send. Each declaration opens a short-lived
/// connection of its own: it happens once per queue and process.
/// </summary>
public sealed class JobQueueDeclarer(IOptions<RabbitMqOptions> options)
{
    private static readonly TimeSpan DeclareTimeout = TimeSpan.FromSeconds(10);
    private readonly ConcurrentDictionary<string, Lazy<Task>> _declarations = new(StringComparer.Ordinal);

    public async Task EnsureDeclaredAsync(string queue, CancellationToken cancellationToken)
    {
        var declaration = _declarations.GetOrAdd(queue, name => new Lazy<Task>(() => DeclareAsync(name)));
        try
        {
            await declaration.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch when (declaration.Value.IsFaulted || declaration.Value.IsCanceled)
        {
            _declarations.TryRemove(KeyValuePair.Create(queue, declaration));
            throw;
        }
    }

    /// <summary>Forgets that <paramref name="queue"/> was declared (it was deleted), so the next send declares it again.</summary>
    public void Forget(string queue) => _declarations.TryRemove(queue, out _);

    private async Task DeclareAsync(string queue)
    {
        using var timeout = new CancellationTokenSource(DeclareTimeout);
        var factory = options.Value.ConnectionFactory("async-serving-queue-declare");
        await using var connection = await factory.CreateConnectionAsync(timeout.Token).ConfigureAwait(false);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: timeout.Token).ConfigureAwait(false);
        await JobQueues.DeclareAsync(channel, queue, timeout.Token).ConfigureAwait(false);
    }
}
