using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Api.Routing;

/// <summary>
/// The routing tables, in Redis (<c>routing:{name}</c>, JSON), shared by every API instance. Each
/// instance keeps what it read for at most <see cref="RoutingOptions.CacheDuration"/>; a change
/// drops the table here at once and, on the Redis channel <see cref="Channel"/>, on every other
/// instance, so the next submit reads the new weights. A read that started before a change never
/// puts the old table back (the generation it started in has passed).
/// </summary>
internal sealed partial class RoutingStore(
    IConnectionMultiplexer redis, IOptions<RoutingOptions> options, TimeProvider clock, ILogger<RoutingStore> logger) : IHostedService
{
    public static readonly RedisChannel Channel = RedisChannel.Literal("model-routing-changed");

    private readonly IDatabase _db = redis.GetDatabase();
    private readonly ConcurrentDictionary<string, (RoutingTable? Table, DateTimeOffset Until)> _cache = new(StringComparer.Ordinal);
    private long _generation;

    /// <summary>Model <paramref name="name"/>'s table, or null when it has none (every submit goes to the newest version).</summary>
    public async Task<RoutingTable?> GetAsync(string name, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        if (_cache.TryGetValue(name, out var cached) && cached.Until > now)
        {
            return cached.Table;
        }

        var generation = Interlocked.Read(ref _generation);
        var table = Parse(await _db.StringGetAsync(Key(name)).WaitAsync(cancellationToken).ConfigureAwait(false));
        var duration = options.Value.CacheDuration;
        if (duration > TimeSpan.Zero && Interlocked.Read(ref _generation) == generation)
        {
            _cache[name] = (table, now + duration);
        }

        return table;
    }

    /// <summary>Stores the table, then tells every instance; the next submit here already routes by it.</summary>
    public async Task SetAsync(string name, RoutingTable table, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        var json = JsonSerializer.Serialize(new StoredTable(table.Weights.ToDictionary(), table.UpdatedAt, table.UpdatedBy));
        await _db.StringSetAsync(Key(name), json).WaitAsync(cancellationToken).ConfigureAwait(false);
        await ChangedAsync(name).ConfigureAwait(false);
    }

    /// <summary>Removes the table: the name goes back to its newest version. False when it had none.</summary>
    public async Task<bool> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        var deleted = await _db.KeyDeleteAsync(Key(name)).WaitAsync(cancellationToken).ConfigureAwait(false);
        await ChangedAsync(name).ConfigureAwait(false);
        return deleted;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            var subscriber = redis.GetSubscriber();
            await subscriber.SubscribeAsync(Channel, (_, message) => Forget(message.ToString())).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RedisException ex)
        {
            LogSubscribeFailed(logger, ex.Message);
        }

        // While the subscription is down, messages are missed: after a reconnect nothing cached is trusted.
        redis.ConnectionRestored += OnConnectionRestored;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        redis.ConnectionRestored -= OnConnectionRestored;
        return Task.CompletedTask;
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        Interlocked.Increment(ref _generation);
        _cache.Clear();
    }

    /// <summary>Drops the table here, then tells the other instances (who else missed it waits out the cache duration).</summary>
    private async Task ChangedAsync(string name)
    {
        Forget(name);
        try
        {
            // Not cancellable: the table is written, so the other instances must hear of it even if the client left.
            await redis.GetSubscriber().PublishAsync(Channel, name).ConfigureAwait(false);
        }
        catch (RedisException ex)
        {
            LogPublishFailed(logger, name, ex.Message);
        }
    }

    private void Forget(string name)
    {
        Interlocked.Increment(ref _generation);
        _cache.TryRemove(name, out _);
    }

    private static RedisKey Key(string name) => "routing:" + name;

    private static RoutingTable? Parse(RedisValue value)
    {
        if (value.IsNullOrEmpty)
        {
            return null;
        }

        var stored = JsonSerializer.Deserialize<StoredTable>(value.ToString());
        return stored?.Weights is null ? null : new RoutingTable(stored.Weights, stored.UpdatedAt, stored.UpdatedBy ?? string.Empty);
    }

    private sealed record StoredTable(Dictionary<string, int> Weights, DateTimeOffset UpdatedAt, string? UpdatedBy);

    [LoggerMessage(EventId = 900, Level = LogLevel.Warning, Message = "Not subscribed to routing changes ({Reason}): changes made elsewhere are seen here once the routing cache expires")]
    private static partial void LogSubscribeFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 901, Level = LogLevel.Warning, Message = "Routing change of model {Model} not published ({Reason}): other API instances see it once their routing cache expires")]
    private static partial void LogPublishFailed(ILogger logger, string model, string reason);
}
