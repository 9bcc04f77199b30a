using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using StandardWebhooks;
using StandardWebhooks.Diagnostics;

namespace Async.Serving.Chaos;

/// <summary>
/// One request the receiver got. <see cref="CompletedAt"/>, <see cref="Status"/> and
/// <see cref="OutputHash"/> come from the body's <c>data</c> (the Job resource).
/// </summary>
internal sealed record Delivery(
    string WebhookId, string Type, string? JobId, string BodyHash, bool SignatureValid, int Answered,
    string? Status, DateTimeOffset? CompletedAt, string? OutputHash);

/// <summary>
/// A client's webhook endpoint on 127.0.0.1 or another address of this host (Kestrel, a free port): checks every request's Standard
/// Webhooks signature with the tenant's secret (the StandardWebhooks package), records it, and answers
/// 200, or 401 for a bad signature, or 503 for the first delivery of a fixed share of webhook ids so
/// that the sender's retries are exercised too.
/// </summary>
internal sealed class SignedWebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly int _failFirstPercent;
    private readonly ConcurrentDictionary<string, int> _seen = new(StringComparer.Ordinal);
    private StandardWebhook? _verifier;
    private int _unreadable;

    private SignedWebhookReceiver(WebApplication app, int failFirstPercent)
    {
        _app = app;
        _failFirstPercent = failFirstPercent;
    }

    public Uri BaseAddress { get; private set; } = null!;

    public ConcurrentQueue<Delivery> Deliveries { get; } = new();

    /// <summary>Requests that came before the secret was known or could not be read at all.</summary>
    public int Unreadable => _unreadable;

    /// <summary>The tenant's <c>whsec_…</c> secret; set before any job with a webhook is submitted.</summary>
    public void UseSecret(string secret) => _verifier = new StandardWebhook(secret);

    public static async Task<SignedWebhookReceiver> StartAsync(int failFirstPercent, string host, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        var app = builder.Build();
        app.Urls.Add($"http://{host}:0");
        var receiver = new SignedWebhookReceiver(app, failFirstPercent);
        app.MapPost("/hooks/{index}", (Delegate)receiver.ReceiveAsync);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        receiver.BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single());
        return receiver;
    }

    /// <summary>The URL job number <paramref name="index"/> names as its webhook.</summary>
    public string UrlFor(int index) => new Uri(BaseAddress, $"/hooks/{index}").ToString();

    private async Task<IResult> ReceiveAsync(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync(context.RequestAborted).ConfigureAwait(false);
        var webhookId = context.Request.Headers["webhook-id"].ToString();
        if (_verifier is not { } verifier)
        {
            Interlocked.Increment(ref _unreadable);
            return Results.StatusCode(StatusCodes.Status503ServiceUnavailable);
        }

        var valid = true;
        try
        {
            verifier.Verify(body, context.Request.Headers);
        }
        catch (WebhookVerificationException)
        {
            valid = false;
        }

        var seen = _seen.AddOrUpdate(webhookId, 1, (_, n) => n + 1);
        var answer = !valid ? StatusCodes.Status401Unauthorized
            : seen == 1 && FailsFirst(webhookId) ? StatusCodes.Status503ServiceUnavailable
            : StatusCodes.Status200OK;
        Deliveries.Enqueue(Parse(webhookId, body, valid, answer));
        return Results.StatusCode(answer);
    }

    private bool FailsFirst(string webhookId) =>
        SHA256.HashData(Encoding.UTF8.GetBytes(webhookId))[0] * 100 < _failFirstPercent * 256;

    private Delivery Parse(string webhookId, string body, bool valid, int answer)
    {
        var hash = Hash(body);
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            var type = root.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
            if (!root.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Object)
            {
                return new Delivery(webhookId, type, null, hash, valid, answer, null, null, null);
            }

            return new Delivery(
                webhookId, type,
                data.TryGetProperty("id", out var id) ? id.GetString() : null,
                hash, valid, answer,
                data.TryGetProperty("status", out var status) ? status.GetString() : null,
                data.TryGetProperty("completed_at", out var at) && at.ValueKind == JsonValueKind.String ? at.GetDateTimeOffset() : null,
                data.TryGetProperty("output", out var output) ? HashOf(output) : null);
        }
        catch (JsonException)
        {
            Interlocked.Increment(ref _unreadable);
            return new Delivery(webhookId, "", null, hash, valid, answer, null, null, null);
        }
    }

    /// <summary>A hash of a JSON value in its compact form (numbers keep their text), comparable across documents.</summary>
    public static string? HashOf(JsonElement value) =>
        value.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined ? null : Hash(JsonSerializer.Serialize(value));

    private static string Hash(string text) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
