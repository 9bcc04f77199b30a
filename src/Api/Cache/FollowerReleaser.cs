using System.Globalization;
using Async.Serving.Api.Jobs;
using Async.Serving.Contracts;
using Async.Serving.Jobs;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Cache;

/// <summary>
/// Sends the messages of followers whose leader was cancelled, expired or removed before it
/// succeeded (the job store's <see cref="RedisJobStore.CacheReleased"/> sets): they then run on
/// their own, as if they had never followed. Each API claims a follower for a lease before sending
/// it, so several APIs do not send it twice; it is forgotten only after its message was confirmed
/// (or it is no longer queued), so a failed send is tried again when the lease ends.
/// </summary>
internal sealed partial class FollowerReleaser(
    RedisJobStore store, JobSender sender, IOptions<CacheOptions> options, ILogger<FollowerReleaser> logger) : BackgroundService
{
    /// <summary>How long a claimed follower is left to this API before another may send it.</summary>
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ReleaseAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                LogReleaseFailed(logger, ex.Message);
            }

            try
            {
                await Task.Delay(options.Value.ReleaseInterval, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One round: sends each released follower still queued; returns how many were sent.</summary>
    public async Task<int> ReleaseAsync(CancellationToken cancellationToken)
    {
        var sent = 0;
        foreach (var id in await store.ClaimReleasedFollowersAsync(100, Lease).ConfigureAwait(false))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var fields = await store.ReleaseFieldsAsync(id).ConfigureAwait(false);
            if (fields is not null && fields.GetValueOrDefault("status") == JobStatuses.Queued && !fields.ContainsKey("leader")
                && fields.GetValueOrDefault("model") is { } model && model.IndexOf('@', StringComparison.Ordinal) is > 0 and var at)
            {
                string? Text(string name) => fields.TryGetValue(name, out var v) && v.Length > 0 ? v : null;
                DateTimeOffset? Time(string name) => Text(name) is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(ms, CultureInfo.InvariantCulture)) : null;
                await sender.SendAsync(new RunInference
                {
                    JobId = id,
                    TenantId = fields["tenant"],
                    Pipeline = fields["pipeline"],
                    Model = model[..at],
                    ModelVersion = model[(at + 1)..],
                    InputKey = RedisJobStore.InputKey(id).ToString(),
                    ContentType = Text("content_type"),
                    ParamsJson = Text("params"),
                    SubmittedAt = Time("created_at") ?? DateTimeOffset.UtcNow,
                    ExpiresAt = Time("expires_at"),
                    TimeoutSeconds = int.TryParse(Text("timeout_seconds"), CultureInfo.InvariantCulture, out var timeout) ? timeout : 0,
                    Priority = JobPriorities.OrNormal(Text("priority")),
                }, fields.GetValueOrDefault("queue") ?? string.Empty).ConfigureAwait(false);
                LogReleased(logger, id);
                sent++;
            }

            await store.ForgetReleasedAsync(id).ConfigureAwait(false);
        }

        return sent;
    }

    [LoggerMessage(EventId = 940, Level = LogLevel.Warning, Message = "Released cache followers not sent, retrying: {Reason}")]
    private static partial void LogReleaseFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 941, Level = LogLevel.Information, Message = "Cache follower {JobId} sent on its own: the job it followed ended without an output")]
    private static partial void LogReleased(ILogger logger, string jobId);
}
