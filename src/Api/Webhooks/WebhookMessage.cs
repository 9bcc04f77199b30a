using System.Text.Json;

namespace Async.Serving.Api.Webhooks;

/// <summary>
/// One event to deliver, as the argument of a Hangfire job. Self-contained: the body is fixed when
/// the event happens, so every attempt, on whichever API instance runs it, sends the same bytes
/// under the same <see cref="MessageId"/>; only the timestamp and the signatures are made per attempt.
/// </summary>
/// <param name="TraceParent">The W3C traceparent each attempt continues (the relay's span in the job's trace); null for a test event or a delivery stored before traces.</param>
public sealed record WebhookMessage(string TenantId, string JobId, string Url, string Type, string MessageId, string Body, string? TraceParent = null)
{
    /// <summary>A <c>webhook.test</c> event for the tenant to <paramref name="url"/> (no job), with a fresh message id.</summary>
    public static WebhookMessage Test(string tenantId, string url, DateTimeOffset now, JsonSerializerOptions json)
    {
        var body = JsonSerializer.Serialize(new TestWebhookPayload(WebhooksApi.TestEventType, now.UtcDateTime, new TestWebhookData(tenantId, url)), json);
        return new WebhookMessage(tenantId, JobId: string.Empty, url, WebhooksApi.TestEventType, $"msg_test_{Guid.CreateVersion7():N}", body);
    }

    /// <summary>What the dashboard shows for the job (the body would drown it).</summary>
    public override string ToString() => $"{Type} of job {JobId} to {Url}";
}

/// <summary>The JSON body of a delivery: <c>data</c> is the Job resource as <c>GET /v1/jobs/{id}</c> returns it.</summary>
public sealed record WebhookPayload(string Type, DateTime Timestamp, Jobs.JobResource Data);
