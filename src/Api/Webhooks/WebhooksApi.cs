using System.Globalization;
using System.Text.Json;
using Async.Serving.Api.Auth;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Jobs;
using Async.Serving.Api.OpenApi;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Webhooks;

public static class WebhooksApi
{
    public static RouteGroupBuilder MapWebhooksApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/webhooks").RequireAuthorization("tenant").WithTags("Webhooks");
        group.MapGet("/secret", GetSecretAsync).WithName("GetWebhookSecret").WithSummary("The tenant's whsec_… secret that signs its webhooks (created on first use).");
        group.MapPost("/secret/rotate", RotateAsync).WithName("RotateWebhookSecret")
            .DisableAntiforgery()
            .WithSummary("A new signing secret; the previous one keeps signing next to it for Serving:Webhooks:RotationOverlap (24 h).");
        group.MapGet("/deliveries", DeliveriesAsync).WithName("ListWebhookDeliveries").ProducesProblems(400)
            .WithSummary("The tenant's webhook delivery attempts, newest first; filters job_id and status (the outcome); cursor paging.");
        group.MapPost("/deliveries/{id}/redeliver", RedeliverAsync).WithName("RedeliverWebhook").ProducesProblems(404).DisableAntiforgery()
            .WithSummary("Deliver the message of a recorded attempt again, as a new delivery with the same webhook id and body.");
        group.MapPost("/endpoints/enable", EnableAsync).WithName("EnableWebhookEndpoint").ProducesProblems(400).DisableAntiforgery()
            .WithSummary("Deliver to a URL again after its receiver answered 410 Gone and it was disabled.");
        group.MapPost("/test", TestAsync).WithName("SendTestWebhook").ProducesProblems(400, 422).DisableAntiforgery()
            .WithSummary("Send a signed webhook.test event to a URL through the guarded delivery path; 202, then see /v1/webhooks/deliveries.");
        return group;
    }

    public const int DefaultLimit = 20;
    public const int MaxLimit = 100;
    public const int MaxUrlLength = 2048;
    public const string TestEventType = "webhook.test";

    /// <summary>What <c>status</c> may filter on: the outcomes an attempt is recorded with.</summary>
    public static readonly string[] Outcomes = ["delivered", "retrying", "held", "failed", "skipped", "disabled"];

    internal static async Task<Results<Ok<DeliveryList>, ProblemHttpResult>> DeliveriesAsync(
        HttpContext http,
        WebhookStore store,
        [Microsoft.AspNetCore.Mvc.FromQuery(Name = "job_id")] string? jobId,
        string? status,
        int? limit,
        string? cursor,
        CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (status is not null && !Outcomes.Contains(status, StringComparer.Ordinal))
        {
            errors["status"] = [$"One of {string.Join(", ", Outcomes)}."];
        }

        if (limit is < 1 or > MaxLimit)
        {
            errors["limit"] = [$"From 1 to {MaxLimit}."];
        }

        long? before = null;
        if (cursor is not null)
        {
            if (long.TryParse(cursor, NumberStyles.None, CultureInfo.InvariantCulture, out var c) && c > 0)
            {
                before = c;
            }
            else
            {
                errors["cursor"] = ["Not a cursor this API gave."];
            }
        }

        if (errors.Count > 0)
        {
            return ApiProblems.Invalid("The filters are not valid.", errors);
        }

        var take = limit ?? DefaultLimit;
        var rows = await store.DeliveriesAsync(http.User.TenantId(), string.IsNullOrEmpty(jobId) ? null : jobId, status, before, take, cancellationToken)
            .ConfigureAwait(false);
        var next = rows.Count == take ? rows[^1].Id.ToString(CultureInfo.InvariantCulture) : null;
        return TypedResults.Ok(new DeliveryList([.. rows.Select(DeliveryResource.From)], next));
    }

    internal static async Task<Results<Accepted<Redelivery>, ProblemHttpResult>> RedeliverAsync(
        string id, HttpContext http, WebhookStore store, IBackgroundJobClient jobs, CancellationToken cancellationToken)
    {
        WebhookMessage? message = null;
        if (long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var deliveryId))
        {
            message = await store.MessageAsync(http.User.TenantId(), deliveryId, cancellationToken).ConfigureAwait(false);
        }

        if (message is null)
        {
            return ApiProblems.Problem(StatusCodes.Status404NotFound, ApiProblems.NotFound, "No such delivery.",
                $"There is no webhook delivery '{id}' that can be sent again.");
        }

        var hangfireJob = jobs.Enqueue<WebhookDelivery>(d => d.DeliverAsync(message, 1, CancellationToken.None));
        return TypedResults.Accepted(
            $"/v1/webhooks/deliveries?job_id={Uri.EscapeDataString(message.JobId)}",
            new Redelivery(id, message.MessageId, NullIfEmpty(message.JobId), message.Type, message.Url, hangfireJob));
    }

    internal static async Task<Results<Ok<EndpointEnabled>, ProblemHttpResult>> EnableAsync(
        HttpContext http, WebhookStore store, WebhookUrlRequest? request, CancellationToken cancellationToken)
    {
        if (ParseUrl(request) is not { } url)
        {
            return InvalidUrl();
        }

        var wasDisabled = await store.EnableAsync(http.User.TenantId(), url.AbsoluteUri, cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(new EndpointEnabled(url.AbsoluteUri, wasDisabled));
    }

    internal static async Task<Results<Accepted<TestWebhook>, ProblemHttpResult>> TestAsync(
        HttpContext http,
        WebhookUrlCheck urlCheck,
        IBackgroundJobClient jobs,
        TimeProvider clock,
        IOptions<JsonOptions> json,
        WebhookUrlRequest? request,
        CancellationToken cancellationToken)
    {
        if (ParseUrl(request) is not { } url)
        {
            return InvalidUrl();
        }

        // The SSRF guard twice, as for a job's webhook: now, so the caller learns it, and at delivery.
        if (await urlCheck.RefusalAsync(new WebhookSubscription(url.AbsoluteUri, [TestEventType]), cancellationToken).ConfigureAwait(false) is { } refused)
        {
            return refused;
        }

        var message = WebhookMessage.Test(http.User.TenantId(), url.AbsoluteUri, clock.GetUtcNow(), json.Value.SerializerOptions);
        var hangfireJob = jobs.Enqueue<WebhookDelivery>(d => d.DeliverAsync(message, 1, CancellationToken.None));
        return TypedResults.Accepted("/v1/webhooks/deliveries", new TestWebhook(message.MessageId, url.AbsoluteUri, hangfireJob));
    }

    internal static Uri? ParseUrl(WebhookUrlRequest? request) =>
        request?.Url is { Length: > 0 and <= MaxUrlLength } text && Uri.TryCreate(text, UriKind.Absolute, out var url) && InputFetcher.IsFetchable(url)
            ? url
            : null;

    private static ProblemHttpResult InvalidUrl() =>
        ApiProblems.Invalid($"url must be an absolute http or https URL of at most {MaxUrlLength} characters.",
            new Dictionary<string, string[]> { ["url"] = ["Not an absolute http or https URL."] });

    internal static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;

    internal static async Task<Ok<WebhookSecret>> GetSecretAsync(HttpContext http, WebhookStore store, CancellationToken cancellationToken) =>
        TypedResults.Ok(new WebhookSecret(await store.CurrentSecretAsync(http.User.TenantId(), cancellationToken).ConfigureAwait(false)));

    internal static async Task<Ok<RotatedWebhookSecret>> RotateAsync(
        HttpContext http, WebhookStore store, IOptions<WebhookOptions> options, CancellationToken cancellationToken)
    {
        var (secret, previousExpiresAt) = await store.RotateAsync(http.User.TenantId(), options.Value.RotationOverlap, cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(new RotatedWebhookSecret(secret, previousExpiresAt.UtcDateTime));
    }
}

public sealed record WebhookSecret(string Secret);

/// <summary>The new secret, and until when the one it replaced still signs deliveries.</summary>
public sealed record RotatedWebhookSecret(string Secret, DateTime PreviousSecretExpiresAt);

/// <summary>The body of <c>POST /v1/webhooks/endpoints/enable</c> and <c>POST /v1/webhooks/test</c>.</summary>
public sealed record WebhookUrlRequest(string? Url);

/// <summary>
/// One delivery attempt. <c>job_id</c> is null for a <c>webhook.test</c>; <c>redeliverable</c> is false
/// for attempts recorded before bodies were kept.
/// </summary>
public sealed record DeliveryResource(
    string Id, string? JobId, string MessageId, string EventType, string Url, int Attempt, string Status, string Detail, DateTime At, bool Redeliverable)
{
    public static DeliveryResource From(DeliveryRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return new DeliveryResource(record.Id.ToString(CultureInfo.InvariantCulture), WebhooksApi.NullIfEmpty(record.JobId), record.MessageId,
            record.EventType, record.Url, record.Attempt, record.Outcome, record.Detail, record.At.UtcDateTime, record.Redeliverable);
    }
}

public sealed record DeliveryList(IReadOnlyList<DeliveryResource> Data, string? NextCursor);

/// <summary>A redelivery taken: <c>hangfire_job</c> is the first attempt's job in the dashboard.</summary>
public sealed record Redelivery(string RedeliveryOf, string MessageId, string? JobId, string EventType, string Url, string HangfireJob);

public sealed record EndpointEnabled(string Url, bool WasDisabled);

public sealed record TestWebhook(string MessageId, string Url, string HangfireJob);

/// <summary>The JSON body of a <c>webhook.test</c> delivery.</summary>
public sealed record TestWebhookPayload(string Type, DateTime Timestamp, TestWebhookData Data);

public sealed record TestWebhookData(string Tenant, string Url);
