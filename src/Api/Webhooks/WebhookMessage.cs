namespace Async.Serving.Api.Webhooks;

/// <summary>
/// One event to deliver, as the argument of a Hangfire job. Self-contained: the body is fixed when
/// the event happens, so every attempt, on whichever API instance runs it, sends the same bytes
/// under the same <see cref="MessageId"/>; only the timestamp and the signatures are made per attempt.
/// </summary>
public sealed record WebhookMessage(string TenantId, string JobId, string Url, string Type, string MessageId, string Body)
{
    /// <summary>What the dashboard shows for the job (the body would drown it).</summary>
    public override string ToString() => $"{Type} of job {JobId} to {Url}";
}

/// <summary>The JSON body of a delivery: <c>data</c> is the Job resource as <c>GET /v1/jobs/{id}</c> returns it.</summary>
public sealed record WebhookPayload(string Type, DateTime Timestamp, Jobs.JobResource Data);
