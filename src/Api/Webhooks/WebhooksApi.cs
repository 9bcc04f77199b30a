using Async.Serving.Api.Auth;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Webhooks;

public static class WebhooksApi
{
    public static RouteGroupBuilder MapWebhooksApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/webhooks").RequireAuthorization("tenant").WithTags("Webhooks");
        group.MapGet("/secret", GetSecretAsync).WithSummary("The tenant's whsec_… secret that signs its webhooks (created on first use).");
        group.MapPost("/secret/rotate", RotateAsync)
            .DisableAntiforgery()
            .WithSummary("A new signing secret; the previous one keeps signing next to it for Serving:Webhooks:RotationOverlap (24 h).");
        return group;
    }

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
