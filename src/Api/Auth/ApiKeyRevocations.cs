using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Async.Serving.Api.Auth;

/// <summary>
/// Keys revoked through the API, told to every API instance on the Redis channel
/// <see cref="Channel"/>, so a revoked key stops working at once everywhere instead of when each
/// instance's key cache expires (<see cref="ApiKeyOptions.KeyCacheDuration"/>, which stays the bound
/// for an instance that misses the message). An id is remembered as long as any cache could hold
/// the key (<see cref="ApiKeyOptions.KeyCacheDuration"/> plus <see cref="ApiKeyOptions.StaleKeyLifetime"/>);
/// after that every lookup reads <c>revoked_at</c> from PostgreSQL anyway.
/// </summary>
internal sealed partial class ApiKeyRevocations(
    IConnectionMultiplexer redis, IOptions<ApiKeyOptions> options, TimeProvider clock, ILogger<ApiKeyRevocations> logger) : IHostedService
{
    public static readonly RedisChannel Channel = RedisChannel.Literal("api-key-revoked");

    private readonly ConcurrentDictionary<Guid, DateTimeOffset> _revoked = new();

    public bool IsRevoked(Guid keyId)
    {
        if (!_revoked.TryGetValue(keyId, out var at))
        {
            return false;
        }

        if (clock.GetUtcNow() - at <= Remembered)
        {
            return true;
        }

        _revoked.TryRemove(keyId, out _);
        return false;
    }

    /// <summary>Marks the key revoked here, then tells the other instances; a Redis failure leaves them the cache bound.</summary>
    public async Task PublishAsync(Guid keyId, CancellationToken cancellationToken)
    {
        Remember(keyId);
        try
        {
            await redis.GetSubscriber().PublishAsync(Channel, keyId.ToString("N")).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RedisException ex)
        {
            LogPublishFailed(logger, keyId, ex.Message);
        }
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await redis.GetSubscriber().SubscribeAsync(Channel, (_, message) =>
            {
                if (Guid.TryParseExact(message.ToString(), "N", out var keyId))
                {
                    Remember(keyId);
                }
            }).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RedisException ex)
        {
            LogSubscribeFailed(logger, ex.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private TimeSpan Remembered => options.Value.KeyCacheDuration + options.Value.StaleKeyLifetime;

    private void Remember(Guid keyId)
    {
        var now = clock.GetUtcNow();
        _revoked[keyId] = now;
        foreach (var (id, at) in _revoked)
        {
            if (now - at > Remembered)
            {
                _revoked.TryRemove(id, out _);
            }
        }
    }

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "Revocation of API key {KeyId} not published ({Reason}): other API instances refuse it once their key cache expires")]
    private static partial void LogPublishFailed(ILogger logger, Guid keyId, string reason);

    [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "Not subscribed to API key revocations ({Reason}): keys revoked elsewhere are refused here once the key cache expires")]
    private static partial void LogSubscribeFailed(ILogger logger, string reason);
}
