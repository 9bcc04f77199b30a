using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Async.Serving.IntegrationTests;

/// <summary>One request a <see cref="WebhookReceiver"/> got.</summary>
/// <param name="TraceParent">The request's W3C traceparent header, empty when it had none.</param>
public sealed record ReceivedWebhook(string Path, string Id, string Timestamp, string Signature, string Body, DateTime At, string TraceParent);

/// <summary>
/// A Kestrel server on 127.0.0.1 with a free port that plays a client's webhook endpoint: it records
/// every POST and answers with the next status of <see cref="Answers"/> (200 when none is left).
/// Start it before the API host of a test: WebApplicationFactory watches hosts being built.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly SemaphoreSlim _arrived = new(0);

    private WebhookReceiver(WebApplication app) => _app = app;

    public Uri BaseAddress { get; private set; } = null!;

    public ConcurrentQueue<ReceivedWebhook> Requests { get; } = new();

    /// <summary>Statuses to answer with, in order.</summary>
    public ConcurrentQueue<int> Answers { get; } = new();

    /// <summary>A URL of this receiver no other test uses.</summary>
    public string NewUrl() => new Uri(BaseAddress, "/hooks/" + Guid.NewGuid().ToString("N")).ToString();

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Testing" });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        var app = builder.Build();
        app.Urls.Add("http://127.0.0.1:0");
        var receiver = new WebhookReceiver(app);
        app.MapPost("/hooks/{id}", async (HttpContext context) =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            var headers = context.Request.Headers;
            receiver.Requests.Enqueue(new ReceivedWebhook(
                context.Request.Path, headers["webhook-id"].ToString(), headers["webhook-timestamp"].ToString(),
                headers["webhook-signature"].ToString(), body, DateTime.UtcNow, headers["traceparent"].ToString()));
            receiver._arrived.Release();
            return Results.StatusCode(receiver.Answers.TryDequeue(out var status) ? status : 200);
        });
        await app.StartAsync();
        receiver.BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single());
        return receiver;
    }

    /// <summary>Waits until <paramref name="count"/> requests to <paramref name="url"/> arrived, at most <paramref name="timeout"/>.</summary>
    public async Task<ReceivedWebhook[]> WaitForAsync(string url, int count, TimeSpan timeout)
    {
        var path = new Uri(url).AbsolutePath;
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var matching = Requests.Where(r => r.Path == path).ToArray();
            if (matching.Length >= count)
            {
                return matching;
            }

            var left = deadline - DateTime.UtcNow;
            Assert.True(left > TimeSpan.Zero, $"{matching.Length} of {count} webhook requests to {path} arrived within {timeout.TotalSeconds} s");
            await _arrived.WaitAsync(left < TimeSpan.FromMilliseconds(250) ? left : TimeSpan.FromMilliseconds(250));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _arrived.Dispose();
    }
}
