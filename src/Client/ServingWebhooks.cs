using System.Text.Json;
using Microsoft.AspNetCore.Http;
using StandardWebhooks;
using StandardWebhooks.Diagnostics;

namespace Async.Serving.Client;

/// <summary>
/// A verified webhook: <see cref="Type"/> is <c>job.started</c>, <c>job.progress</c>,
/// <c>job.completed</c> or <c>webhook.test</c>; <see cref="Data"/> is the job for <c>job.*</c> events,
/// null otherwise (the body's <c>data</c> is in <see cref="RawData"/> for every type).
/// </summary>
public sealed record WebhookEvent(string Type, DateTimeOffset Timestamp, Job? Data)
{
    /// <summary>The <c>webhook-id</c>: the same for every attempt of one event, so a receiver can drop repeats.</summary>
    public string Id { get; init; } = string.Empty;

    public JsonElement RawData { get; init; }
}

/// <summary>Verifies webhooks the API sends (Standard Webhooks: <c>webhook-id</c>, <c>webhook-timestamp</c>, <c>webhook-signature</c>).</summary>
public static class ServingWebhooks
{
    public const string IdHeader = "webhook-id";
    public const string TimestampHeader = "webhook-timestamp";
    public const string SignatureHeader = "webhook-signature";

    /// <summary>
    /// Checks the signature with <paramref name="secret"/> (the tenant's <c>whsec_…</c>) and that the
    /// timestamp is within 5 minutes of now, then reads the body. Pass the body exactly as received.
    /// While a rotated secret overlaps, the API signs with both: either secret verifies.
    /// </summary>
    /// <exception cref="WebhookVerificationException">A header is missing, no signature matches, or the timestamp is too old or too new.</exception>
    public static WebhookEvent Verify(string secret, IReadOnlyDictionary<string, string> headers, string body)
    {
        ArgumentNullException.ThrowIfNull(headers);
        string Header(string name) =>
            headers.TryGetValue(name, out var value) ? value
            : headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value ?? string.Empty;
        return Verify(secret, Header(IdHeader), Header(TimestampHeader), Header(SignatureHeader), body);
    }

    /// <summary>As <see cref="Verify(string, IReadOnlyDictionary{string, string}, string)"/>, for a request's headers in ASP.NET Core.</summary>
    public static WebhookEvent Verify(string secret, IHeaderDictionary headers, string body)
    {
        ArgumentNullException.ThrowIfNull(headers);
        return Verify(secret, headers[IdHeader].ToString(), headers[TimestampHeader].ToString(), headers[SignatureHeader].ToString(), body);
    }

    private static WebhookEvent Verify(string secret, string id, string timestamp, string signatures, string body)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        ArgumentNullException.ThrowIfNull(body);
        var webhook = new StandardWebhook(secret);
        WebhookVerificationException? refused = null;
        var verified = false;
        // One signature at a time: with two secrets the header holds two, and each is tried on its own.
        foreach (var signature in signatures.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).DefaultIfEmpty(string.Empty))
        {
            try
            {
                webhook.Verify(body, new HeaderDictionary
                {
                    [IdHeader] = id,
                    [TimestampHeader] = timestamp,
                    [SignatureHeader] = signature,
                });
                verified = true;
                break;
            }
            catch (WebhookVerificationException ex)
            {
                refused = ex;
            }
        }

        if (!verified)
        {
            throw refused ?? new WebhookVerificationException("No matching signature found");
        }

        WebhookPayload payload;
        try
        {
            payload = JsonSerializer.Deserialize(body, ServingClientJsonContext.Default.WebhookPayload)
                ?? throw new WebhookVerificationException("The webhook body is empty.");
        }
        catch (JsonException ex)
        {
            throw new WebhookVerificationException("The webhook body is not the API's JSON.", ex);
        }

        var job = payload.Type.StartsWith("job.", StringComparison.Ordinal) && payload.Data.ValueKind == JsonValueKind.Object
            ? payload.Data.Deserialize(ServingClientJsonContext.Default.Job)
            : null;
        return new WebhookEvent(payload.Type, payload.Timestamp, job) { Id = id, RawData = payload.Data.Clone() };
    }
}
