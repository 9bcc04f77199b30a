using System.Globalization;
using System.Net.Http.Json;

namespace Async.Serving.Client;

/// <summary>Models, usage, API keys and webhooks.</summary>
public sealed partial class ServingClient
{
    /// <summary>The models served, their versions, batching settings and live workers.</summary>
    public async Task<IReadOnlyList<Model>> ListModelsAsync(CancellationToken cancellationToken = default) =>
        (await GetAsync("v1/models", ServingClientJsonContext.Default.DataListModel, cancellationToken).ConfigureAwait(false)).Data;

    /// <summary>The tenant's jobs and compute per pipeline and model, for jobs created in [from, to) (the API's default: the last 30 days).</summary>
    public Task<Usage> GetUsageAsync(DateTimeOffset? from = null, DateTimeOffset? to = null, CancellationToken cancellationToken = default) =>
        GetUsageAsync(from, to, model: null, cancellationToken);

    /// <summary>As <see cref="GetUsageAsync(DateTimeOffset?, DateTimeOffset?, CancellationToken)"/>, for one model's versions (a bare name) or one version (<c>name@version</c>): compare a canary with its base.</summary>
    public Task<Usage> GetUsageAsync(DateTimeOffset? from, DateTimeOffset? to, string? model, CancellationToken cancellationToken = default) =>
        GetAsync(Path("v1/usage", ("from", Instant(from)), ("to", Instant(to)), ("model", model)), ServingClientJsonContext.Default.Usage, cancellationToken);

    /// <summary>How the model name's submits split between its versions (needs an admin key).</summary>
    public Task<ModelRouting> GetRoutingAsync(string model, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        return GetAsync($"v1/models/{Escape(model)}/routing", ServingClientJsonContext.Default.ModelRouting, cancellationToken);
    }

    /// <summary>
    /// Sets each version's weight (normalised by their sum; for example 90 and 10); the next submit
    /// of the bare name routes by them (needs an admin key). Rollback: one version at 100.
    /// </summary>
    public Task<ModelRouting> SetRoutingAsync(string model, IReadOnlyDictionary<string, int> weights, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentNullException.ThrowIfNull(weights);
        return SendAsync(HttpMethod.Put, $"v1/models/{Escape(model)}/routing", JsonContent.Create(new RoutingBody(weights), ServingClientJsonContext.Default.RoutingBody),
            ServingClientJsonContext.Default.ModelRouting, retriable: true, cancellationToken);
    }

    /// <summary>Removes the model's weights: the bare name goes to its newest version again (needs an admin key).</summary>
    public Task<ModelRouting> DeleteRoutingAsync(string model, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        return SendAsync(HttpMethod.Delete, $"v1/models/{Escape(model)}/routing", body: null, ServingClientJsonContext.Default.ModelRouting, retriable: true, cancellationToken);
    }

    /// <summary>The tenant's API keys, revoked and expired ones included (needs an admin key).</summary>
    public async Task<IReadOnlyList<ApiKey>> ListKeysAsync(CancellationToken cancellationToken = default) =>
        (await GetAsync("v1/keys", ServingClientJsonContext.Default.DataListApiKey, cancellationToken).ConfigureAwait(false)).Data;

    /// <summary>A new API key (needs an admin key); its secret is in the answer only. Not retried, so that one call makes one key.</summary>
    public Task<CreatedApiKey> CreateKeyAsync(string? name = null, bool admin = false, int? expiresInDays = null, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "v1/keys", JsonContent.Create(new CreateKeyBody(name, admin, expiresInDays), ServingClientJsonContext.Default.CreateKeyBody),
            ServingClientJsonContext.Default.CreatedApiKey, retriable: false, cancellationToken);

    /// <summary>Revokes a key at once on every API instance (needs an admin key); answers the key as revoked.</summary>
    public Task<ApiKey> RevokeKeyAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return SendAsync(HttpMethod.Delete, $"v1/keys/{Escape(id)}", body: null, ServingClientJsonContext.Default.ApiKey, retriable: true, cancellationToken);
    }

    /// <summary>The tenant's <c>whsec_…</c> secret that signs its webhooks; verify deliveries with <see cref="ServingWebhooks.Verify(string, IReadOnlyDictionary{string, string}, string)"/>.</summary>
    public async Task<string> GetWebhookSecretAsync(CancellationToken cancellationToken = default) =>
        (await GetAsync("v1/webhooks/secret", ServingClientJsonContext.Default.WebhookSecret, cancellationToken).ConfigureAwait(false)).Secret;

    /// <summary>A new signing secret; the previous one keeps signing next to it for a while (24 h by default). Not retried.</summary>
    public async Task<string> RotateWebhookSecretAsync(CancellationToken cancellationToken = default) =>
        (await RotateWebhookSecretWithOverlapAsync(cancellationToken).ConfigureAwait(false)).Secret;

    /// <summary>As <see cref="RotateWebhookSecretAsync"/>, with the time until which the previous secret still signs.</summary>
    public Task<RotatedWebhookSecret> RotateWebhookSecretWithOverlapAsync(CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "v1/webhooks/secret/rotate", body: null, ServingClientJsonContext.Default.RotatedWebhookSecret, retriable: false, cancellationToken);

    /// <summary>One page of webhook delivery attempts, newest first.</summary>
    public Task<DeliveryPage> ListDeliveriesAsync(DeliveryQuery? query = null, CancellationToken cancellationToken = default) =>
        GetAsync(Path("v1/webhooks/deliveries", ("job_id", query?.JobId), ("status", query?.Status), ("limit", Number(query?.Limit)), ("cursor", query?.Cursor)),
            ServingClientJsonContext.Default.DeliveryPage, cancellationToken);

    /// <summary>Sends the message of a recorded delivery again, with the same webhook id. Not retried.</summary>
    public Task<Redelivery> RedeliverAsync(string deliveryId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(deliveryId);
        return SendAsync(HttpMethod.Post, $"v1/webhooks/deliveries/{Escape(deliveryId)}/redeliver", body: null,
            ServingClientJsonContext.Default.Redelivery, retriable: false, cancellationToken);
    }

    /// <summary>Delivers to <paramref name="url"/> again after its receiver answered 410 Gone and it was disabled.</summary>
    public Task<EndpointEnabled> EnableWebhookEndpointAsync(Uri url, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(url);
        return SendAsync(HttpMethod.Post, "v1/webhooks/endpoints/enable", JsonContent.Create(new UrlBody(url.AbsoluteUri), ServingClientJsonContext.Default.UrlBody),
            ServingClientJsonContext.Default.EndpointEnabled, retriable: true, cancellationToken);
    }

    /// <summary>Queues a signed <c>webhook.test</c> event to <paramref name="url"/>; its outcome shows in <see cref="ListDeliveriesAsync"/>. Not retried.</summary>
    public Task<TestWebhook> SendTestWebhookAsync(Uri url, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(url);
        return SendAsync(HttpMethod.Post, "v1/webhooks/test", JsonContent.Create(new UrlBody(url.AbsoluteUri), ServingClientJsonContext.Default.UrlBody),
            ServingClientJsonContext.Default.TestWebhook, retriable: false, cancellationToken);
    }

    private static string? Instant(DateTimeOffset? value) =>
        value?.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);
}
