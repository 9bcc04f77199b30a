using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Async.Serving.Api.Security;
using Async.Serving.Breakers;
using Async.Serving.Hosting;
using Async.Serving.Jobs;
using Hangfire;
using Hangfire.Server;
using Microsoft.Extensions.Options;
using StandardWebhooks;

namespace Async.Serving.Api.Webhooks;

/// <summary>A delivery that will not be tried again; Hangfire shows the job as failed with this reason.</summary>
public sealed class WebhookDeliveryFailedException(string message) : Exception(message);

/// <summary>
/// Delivers one webhook attempt as a Hangfire job on queue <c>webhooks</c> (see <see cref="WebhookQueueFilter"/>): signs the body with every
/// secret the tenant signs with now (Standard Webhooks), POSTs it through the SSRF-guarded client, and
/// judges the answer. 2xx: delivered. 410: the tenant's URL is disabled. 429, 5xx, timeouts and
/// network errors: the next attempt is scheduled as a new Hangfire job after the configured delay
/// (or the receiver's longer Retry-After). Anything else, or the last retry failing: the job fails.
/// Every attempt is its own job in the dashboard, with its outcome as the job's result or error.
/// While the circuit breaker of the URL's host is open (<see cref="WebhookBreakers"/>), an attempt is
/// not sent but held: the same attempt is scheduled again for when the breaker lets a request through,
/// as a <see cref="DeliverHeldAsync"/> job, and holding it costs none of its retries.
/// </summary>
public sealed partial class WebhookDelivery(
    IHttpClientFactory clients,
    WebhookStore store,
    WebhookBreakers breakers,
    RedisJobStore jobStore,
    IBackgroundJobClient jobs,
    IOptions<WebhookOptions> options,
    TimeProvider clock,
    ILogger<WebhookDelivery> logger)
{
    public const string HttpClientName = "webhooks";

    /// <summary>The outcomes of an attempt, as <see cref="Deliveries"/> counts them.</summary>
    public static readonly IReadOnlyList<string> Outcomes = ["delivered", "retrying", "held", "failed", "disabled", "skipped", "error"];

    private static readonly Prometheus.Counter Deliveries = Prometheus.Metrics.CreateCounter(
        "serving_webhook_deliveries_total",
        "Webhook delivery attempts by outcome: delivered (2xx), retrying (429, 5xx, timeout, network error; another attempt is scheduled), "
        + "held (not sent: the host's circuit breaker is open; the attempt is scheduled again), failed (given up), disabled (410 Gone), skipped (URL disabled or progress stale), error (the platform failed; Hangfire runs the attempt again).",
        new Prometheus.CounterConfiguration { LabelNames = ["outcome"] });

    private static readonly Prometheus.Histogram Latency = Prometheus.Metrics.CreateHistogram(
        "serving_webhook_delivery_duration_seconds", "Time from sending a webhook request to its answer (or timeout, or network error), per attempt that sent one.",
        new Prometheus.HistogramConfiguration { Buckets = ServingMetrics.SecondsBuckets });

    /// <summary>Creates every outcome's series at 0, so they are scraped, and rates over them read 0, before the first delivery.</summary>
    internal static void InitialiseMetrics()
    {
        foreach (var outcome in Outcomes)
        {
            Deliveries.WithLabels(outcome);
        }
    }

    /// <remarks>
    /// An attempt's own outcome (the receiver's answer) is judged in code: a retry is a new job, a
    /// final failure is <see cref="WebhookDeliveryFailedException"/>, never retried here. Anything
    /// else thrown is the platform failing under the attempt (PostgreSQL stopping while the attempt
    /// records itself, Redis away): Hangfire runs the same attempt again later, so an outage never
    /// turns into a webhook that is given up (the receiver may then see its id twice).
    /// </remarks>
    [AutomaticRetry(Attempts = 10, DelaysInSeconds = new[] { 5, 15, 30, 60, 120, 300 },
        ExceptOn = new[] { typeof(WebhookDeliveryFailedException) }, OnAttemptsExceeded = AttemptsExceededAction.Fail)]
    [JobDisplayName("Webhook {0}, attempt {1}")]
    public Task<string> DeliverAsync(WebhookMessage message, int attempt, CancellationToken cancellationToken) =>
        RunAsync(message, attempt, heldSince: null, cancellationToken);

    /// <summary>
    /// An attempt that was held by the host's open circuit breaker since <paramref name="heldSince"/>
    /// (UTC), run again; Hangfire passes <paramref name="context"/>, whose job id leaves the breaker's held set.
    /// </summary>
    [AutomaticRetry(Attempts = 10, DelaysInSeconds = new[] { 5, 15, 30, 60, 120, 300 },
        ExceptOn = new[] { typeof(WebhookDeliveryFailedException) }, OnAttemptsExceeded = AttemptsExceededAction.Fail)]
    [JobDisplayName("Webhook {0}, attempt {1}, held since {2}")]
    public async Task<string> DeliverHeldAsync(WebhookMessage message, int attempt, DateTime heldSince, PerformContext? context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (context?.BackgroundJob?.Id is { } id)
        {
            await breakers.UnholdAsync(WebhookBreakers.HostOf(message.Url), id, cancellationToken).ConfigureAwait(false);
        }

        return await RunAsync(message, attempt, new DateTimeOffset(DateTime.SpecifyKind(heldSince, DateTimeKind.Utc)), cancellationToken).ConfigureAwait(false);
    }

    private async Task<string> RunAsync(WebhookMessage message, int attempt, DateTimeOffset? heldSince, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        // Each attempt is a span of the job's trace (a child of the relay's span, carried in the message),
        // and its request carries that trace on to the receiver in a traceparent header.
        using var activity = ServingTelemetry.StartFromStored("webhook.attempt", message.TraceParent);
        activity?.SetTag(ServingTelemetry.JobIdTag, message.JobId);
        activity?.SetTag(ServingTelemetry.WebhookIdTag, message.MessageId);
        activity?.SetTag(ServingTelemetry.WebhookAttemptTag, attempt);
        activity?.SetTag(ServingTelemetry.EventTypeTag, message.Type);
        using var scope = logger.BeginWebhookScope(message.MessageId, message.JobId, message.TenantId, attempt);
        string outcome, result;
        try
        {
            (outcome, result) = await AttemptAsync(message, attempt, heldSince, cancellationToken).ConfigureAwait(false);
        }
        catch (WebhookDeliveryFailedException ex)
        {
            Deliveries.WithLabels("failed").Inc();
            activity?.SetTag(ServingTelemetry.OutcomeTag, "failed");
            activity.Fail(ex);
            await RecordAsync(message, attempt, "failed", ex.Message).ConfigureAwait(false);
            throw;
        }
        catch (Exception ex)
        {
            if (ex is not OperationCanceledException)
            {
                Deliveries.WithLabels("error").Inc();
            }

            activity.Fail(ex);
            throw;
        }

        Deliveries.WithLabels(outcome).Inc();
        activity?.SetTag(ServingTelemetry.OutcomeTag, outcome);
        if (outcome == "retrying")
        {
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, result);
        }

        await RecordAsync(message, attempt, outcome, result).ConfigureAwait(false);
        return result;
    }

    private async Task<(string Outcome, string Result)> AttemptAsync(WebhookMessage message, int attempt, DateTimeOffset? heldSince, CancellationToken cancellationToken)
    {
        if (await store.IsDisabledAsync(message.TenantId, message.Url, cancellationToken).ConfigureAwait(false))
        {
            LogSkipped(logger, message.MessageId, message.Url);
            return ("skipped", $"Skipped: {message.Url} answered 410 Gone before and is disabled for this tenant.");
        }

        var progress = message.Type == "job." + WebhookEvents.Progress;
        if (progress
            && await jobStore.GetAsync(message.JobId, includeOutput: false).ConfigureAwait(false) is { } job && JobStatuses.IsTerminal(job.Status))
        {
            // Progress is stale once the job has ended; its job.completed is (or will be) on its way.
            return ("skipped", $"Skipped: job {message.JobId} ended ({job.Status}) before its progress was delivered.");
        }

        var o = options.Value;
        var host = WebhookBreakers.HostOf(message.Url);
        var permit = await breakers.AcquireAsync(host, cancellationToken).ConfigureAwait(false);
        if (permit.Decision == BreakerDecision.Reject)
        {
            return progress
                ? ("skipped", $"Skipped: the circuit breaker of {host} is open; progress events are not held.")
                : ("held", await HoldAsync(message, attempt, heldSince, host, permit.RetryAt, cancellationToken).ConfigureAwait(false));
        }

        var probe = permit.Decision == BreakerDecision.Probe;
        var secrets = await store.SigningSecretsAsync(message.TenantId, cancellationToken).ConfigureAwait(false);
        var now = clock.GetUtcNow();
        using var request = new HttpRequestMessage(HttpMethod.Post, message.Url)
        {
            Content = new StringContent(message.Body, Encoding.UTF8, "application/json"),
        };
        request.Headers.TryAddWithoutValidation("webhook-id", message.MessageId);
        request.Headers.TryAddWithoutValidation("webhook-timestamp", now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation("webhook-signature",
            string.Join(' ', secrets.Select(s => new StandardWebhook(s).Sign(message.MessageId, now, message.Body))));
        request.Headers.UserAgent.ParseAdd("Async.Serving-Webhooks/1");

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(o.Timeout);
        using var client = clients.CreateClient(HttpClientName);
        client.Timeout = Timeout.InfiniteTimeSpan; // the linked token bounds the request and the body together

        string reason;
        TimeSpan? retryAfter = null;
        var reported = false; // the host's breaker heard of this attempt
        var sent = Stopwatch.GetTimestamp();
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            var excerpt = await ReadCappedAsync(response.Content, o.MaxResponseBytes, timeout.Token).ConfigureAwait(false);
            reason = $"{status} {response.ReasonPhrase}" + (excerpt.Length > 0 ? $": {excerpt}" : string.Empty);
            LogAttempt(logger, message.MessageId, attempt, message.Url, status);
            // Any answer but a 5xx shows the host is up (a 429 is its own backoff, honoured below).
            await breakers.ReportAsync(host, status < 500, probe, reason, CancellationToken.None).ConfigureAwait(false);
            reported = true;
            if (response.IsSuccessStatusCode)
            {
                return ("delivered", $"Delivered on attempt {attempt}: {reason}");
            }

            if (response.StatusCode == HttpStatusCode.Gone)
            {
                await store.DisableAsync(message.TenantId, message.Url, reason, CancellationToken.None).ConfigureAwait(false);
                LogDisabled(logger, message.Url, message.TenantId);
                return ("disabled", $"Receiver answered 410 Gone: {message.Url} is disabled for this tenant; no further deliveries go there.");
            }

            if (response.StatusCode != HttpStatusCode.TooManyRequests && status < 500)
            {
                // Redirects are not followed (the target could not be checked before the request) and 4xx will not change.
                throw Fail(message, attempt, $"answered {reason}; not retried");
            }

            retryAfter = RetryAfter(response, now);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            reason = $"no answer within {o.Timeout.TotalSeconds:0.###} s";
        }
        catch (HttpRequestException ex) when (RefusedAddressException.Find(ex) is { } refused)
        {
            throw Fail(message, attempt, $"refused: {refused.Message} Webhooks are delivered only to public addresses");
        }
        catch (HttpRequestException ex)
        {
            reason = ex.Message;
        }
        catch (IOException ex)
        {
            reason = ex.Message;
        }
        finally
        {
            Latency.Observe(Stopwatch.GetElapsedTime(sent).TotalSeconds);
        }

        if (!reported)
        {
            await breakers.ReportAsync(host, success: false, probe, reason, CancellationToken.None).ConfigureAwait(false);
        }

        if (progress)
        {
            throw Fail(message, attempt, $"failed ({reason}); progress events are delivered once, never retried");
        }

        return ("retrying", Retry(message, attempt, reason, retryAfter));
    }

    /// <summary>The record is for people: a PostgreSQL hiccup must not turn a delivery into a failure.</summary>
    private async Task RecordAsync(WebhookMessage message, int attempt, string outcome, string detail)
    {
        try
        {
            await store.RecordAttemptAsync(message, attempt, outcome, detail).ConfigureAwait(false);
        }
        catch (Npgsql.NpgsqlException ex)
        {
            LogRecordFailed(logger, message.MessageId, ex.Message);
        }
    }

    /// <summary>The wait before retry <paramref name="retry"/> (1-based): the configured delay with ±10 % jitter, or a longer Retry-After.</summary>
    public static TimeSpan RetryDelay(IReadOnlyList<TimeSpan> delays, int retry, TimeSpan? retryAfter, double random)
    {
        ArgumentNullException.ThrowIfNull(delays);
        var delay = delays[retry - 1] * (0.9 + (0.2 * random));
        return retryAfter is { } after && after > delay ? after : delay;
    }

    private string Retry(WebhookMessage message, int attempt, string reason, TimeSpan? retryAfter)
    {
        var delays = options.Value.Delays;
        if (attempt > delays.Count)
        {
            throw Fail(message, attempt, $"{reason}; that was the last of {attempt} attempts");
        }

        var delay = RetryDelay(delays, attempt, retryAfter, Random.Shared.NextDouble());
        var next = jobs.Schedule<WebhookDelivery>(d => d.DeliverAsync(message, attempt + 1, CancellationToken.None), delay);
        LogRetryScheduled(logger, message.MessageId, attempt, reason, attempt + 1, delay);
        return $"Attempt {attempt} failed ({reason}); attempt {attempt + 1} is Hangfire job {next}, in {delay:g}.";
    }

    /// <summary>
    /// Schedules the same attempt again for when the breaker of <paramref name="host"/> may let it
    /// through (<paramref name="retryAt"/>: the end of the cool-down, or of the probe's lease), and
    /// records it in the breaker's held set, so that the breaker closing enqueues it at once.
    /// </summary>
    private async Task<string> HoldAsync(
        WebhookMessage message, int attempt, DateTimeOffset? heldSince, string host, DateTimeOffset? retryAt, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var since = heldSince ?? now;
        if (now - since > breakers.MaxHold)
        {
            throw Fail(message, attempt, $"held since {since:u} by the circuit breaker of {host}, longer than Serving:Webhooks:Breaker:MaxHold ({breakers.MaxHold:g})");
        }

        // A second after the breaker may let it through: Hangfire keeps due times in whole seconds and may run a job a little early.
        var delay = (retryAt ?? now) - now + TimeSpan.FromSeconds(1);
        delay = delay < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : delay;
        var next = jobs.Schedule<WebhookDelivery>(d => d.DeliverHeldAsync(message, attempt, since.UtcDateTime, null, CancellationToken.None), delay);
        await breakers.HoldAsync(host, next, now + delay, cancellationToken).ConfigureAwait(false);
        LogHeld(logger, message.MessageId, attempt, host, next, delay);
        return $"Held: the circuit breaker of {host} is open; attempt {attempt} is Hangfire job {next}, in {delay:g} or when the breaker closes.";
    }

    private WebhookDeliveryFailedException Fail(WebhookMessage message, int attempt, string reason)
    {
        LogFailed(logger, message.MessageId, attempt, message.Url, reason);
        return new WebhookDeliveryFailedException($"Webhook {message.MessageId} to {message.Url} failed on attempt {attempt}: {reason}.");
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response, DateTimeOffset now) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } when date > now => date - now,
        _ => null,
    };

    /// <summary>At most <paramref name="max"/> bytes of the answer, as text for the record; the rest is not read.</summary>
    private static async Task<string> ReadCappedAsync(HttpContent content, int max, CancellationToken cancellationToken)
    {
        if (max == 0)
        {
            return string.Empty;
        }

        var buffer = new byte[max];
        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var read = await stream.ReadAtLeastAsync(buffer, max, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            return Encoding.UTF8.GetString(buffer, 0, read).Trim();
        }
    }

    [LoggerMessage(EventId = 705, Level = LogLevel.Warning, Message = "Webhook {MessageId}: the attempt could not be recorded: {Reason}")]
    private static partial void LogRecordFailed(ILogger logger, string messageId, string reason);

    [LoggerMessage(EventId = 700, Level = LogLevel.Information, Message = "Webhook {MessageId} attempt {Attempt} to {Url}: {Status}")]
    private static partial void LogAttempt(ILogger logger, string messageId, int attempt, string url, int status);

    [LoggerMessage(EventId = 701, Level = LogLevel.Warning, Message = "Webhook {MessageId} attempt {Attempt} failed ({Reason}); attempt {Next} in {Delay}")]
    private static partial void LogRetryScheduled(ILogger logger, string messageId, int attempt, string reason, int next, TimeSpan delay);

    [LoggerMessage(EventId = 702, Level = LogLevel.Error, Message = "Webhook {MessageId} attempt {Attempt} to {Url} failed for good: {Reason}")]
    private static partial void LogFailed(ILogger logger, string messageId, int attempt, string url, string reason);

    [LoggerMessage(EventId = 703, Level = LogLevel.Warning, Message = "Webhook URL {Url} answered 410 Gone and is disabled for tenant {TenantId}")]
    private static partial void LogDisabled(ILogger logger, string url, string tenantId);

    [LoggerMessage(EventId = 706, Level = LogLevel.Information, Message = "Webhook {MessageId} attempt {Attempt} held: the breaker of {Host} is open; Hangfire job {Next} in {Delay}")]
    private static partial void LogHeld(ILogger logger, string messageId, int attempt, string host, string next, TimeSpan delay);

    [LoggerMessage(EventId = 704, Level = LogLevel.Information, Message = "Webhook {MessageId} skipped: {Url} is disabled")]
    private static partial void LogSkipped(ILogger logger, string messageId, string url);
}
