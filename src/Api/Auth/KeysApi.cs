using Async.Serving.Api.Errors;
using Async.Serving.Api.OpenApi;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Async.Serving.Api.Auth;

/// <summary>
/// <c>/v1/keys</c>: a tenant manages its own API keys with an admin key. Secrets are shown once, at
/// creation; only SHA-256 digests are stored. Another tenant's key is answered like a missing one.
/// </summary>
public static class KeysApi
{
    public const int MaxNameLength = 200;
    public const int MaxExpiresInDays = 3650;

    public static RouteGroupBuilder MapKeysApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/keys").RequireAuthorization("tenant").WithTags("Keys").AddEndpointFilter(RequireAdmin).ProducesProblems(403);
        group.MapGet("/", ListAsync).WithName("ListKeys")
            .WithSummary("The tenant's API keys, newest first, revoked and expired ones included; never a secret (admin scope).");
        group.MapPost("/", CreateAsync).WithName("CreateKey").ProducesProblems(400).DisableAntiforgery()
            .WithSummary("Create an API key; the answer holds the secret, shown this once (admin scope).");
        group.MapDelete("/{id}", RevokeAsync).WithName("RevokeKey").ProducesProblems(404, 409)
            .WithSummary("Revoke a key: refused at once by every API instance; 409 for the tenant's last admin key (admin scope).");
        return group;
    }

    /// <summary>Keys without the admin scope may use the API but not manage keys.</summary>
    private static async ValueTask<object?> RequireAdmin(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        if (!context.HttpContext.User.IsAdmin())
        {
            return ApiProblems.Problem(StatusCodes.Status403Forbidden, ApiProblems.Forbidden, "Admin scope required.",
                "Managing API keys needs a key with the admin scope; this key has none.");
        }

        return await next(context).ConfigureAwait(false);
    }

    internal static async Task<Ok<ApiKeyList>> ListAsync(HttpContext http, ApiKeyStore store, CancellationToken cancellationToken)
    {
        var keys = await store.ListAsync(http.User.TenantId(), cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(new ApiKeyList([.. keys.Select(ApiKeyResource.From)]));
    }

    internal static async Task<Results<Created<CreatedApiKeyResource>, ProblemHttpResult>> CreateAsync(
        HttpContext http, ApiKeyStore store, TimeProvider clock, CreateKeyRequest? request, CancellationToken cancellationToken)
    {
        var name = string.IsNullOrWhiteSpace(request?.Name) ? "default" : request.Name.Trim();
        var errors = new Dictionary<string, string[]>();
        if (name.Length > MaxNameLength)
        {
            errors["name"] = [$"At most {MaxNameLength} characters."];
        }

        if (request?.ExpiresInDays is < 1 or > MaxExpiresInDays)
        {
            errors["expires_in_days"] = [$"A whole number of days from 1 to {MaxExpiresInDays}."];
        }

        if (errors.Count > 0)
        {
            return ApiProblems.Invalid("The key's name or expiry is not valid.", errors);
        }

        var expiresAt = request?.ExpiresInDays is { } days ? clock.GetUtcNow().AddDays(days) : (DateTimeOffset?)null;
        var created = await store.CreateAsync(http.User.TenantId(), name, expiresAt, request?.Admin ?? false, cancellationToken).ConfigureAwait(false);
        var resource = ApiKeyResource.From(created.Record);
        return TypedResults.Created($"/v1/keys/{resource.Id}", new CreatedApiKeyResource(
            resource.Id, created.Key, resource.Name, resource.Prefix, resource.Admin, resource.CreatedAt, resource.ExpiresAt));
    }

    internal static async Task<Results<Ok<ApiKeyResource>, ProblemHttpResult>> RevokeAsync(
        string id, HttpContext http, ApiKeyStore store, ApiKeyRevocations revocations, CancellationToken cancellationToken)
    {
        if (!Guid.TryParse(id, out var keyId))
        {
            return NotFound(id);
        }

        var (outcome, record) = await store.RevokeAsync(http.User.TenantId(), keyId, cancellationToken).ConfigureAwait(false);
        switch (outcome)
        {
            case RevokeOutcome.NotFound:
                return NotFound(id);
            case RevokeOutcome.LastAdminKey:
                return ApiProblems.Problem(StatusCodes.Status409Conflict, ApiProblems.Conflict, "The tenant's last admin key.",
                    $"Key {id} is the tenant's last usable admin key; create another admin key before revoking this one.");
            case RevokeOutcome.Revoked:
                // CancellationToken.None: the row is revoked, so the other instances must hear of it even if the client left.
                await revocations.PublishAsync(keyId, CancellationToken.None).ConfigureAwait(false);
                break;
        }

        return TypedResults.Ok(ApiKeyResource.From(record!));
    }

    private static ProblemHttpResult NotFound(string id) =>
        ApiProblems.Problem(StatusCodes.Status404NotFound, ApiProblems.NotFound, "No such key.", $"There is no API key '{id}'.");
}

/// <summary>The body of <c>POST /v1/keys</c>; every field optional. <c>admin</c> defaults to false.</summary>
public sealed record CreateKeyRequest(string? Name, bool? Admin, int? ExpiresInDays);

/// <summary>A key as the API shows it: <c>prefix</c> is its first characters, enough to tell keys apart.</summary>
public sealed record ApiKeyResource(
    string Id, string Name, string Prefix, bool Admin, DateTime CreatedAt, DateTime? ExpiresAt, DateTime? RevokedAt, DateTime? LastUsedAt)
{
    public static ApiKeyResource From(ApiKeyRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return new ApiKeyResource(record.Id.ToString("N"), record.Name, record.KeyPrefix, record.Admin,
            record.CreatedAt.UtcDateTime, record.ExpiresAt?.UtcDateTime, record.RevokedAt?.UtcDateTime, record.LastUsedAt?.UtcDateTime);
    }
}

/// <summary><c>key</c> is the secret: shown in this answer only.</summary>
public sealed record CreatedApiKeyResource(
    string Id, string Key, string Name, string Prefix, bool Admin, DateTime CreatedAt, DateTime? ExpiresAt);

public sealed record ApiKeyList(IReadOnlyList<ApiKeyResource> Data);
