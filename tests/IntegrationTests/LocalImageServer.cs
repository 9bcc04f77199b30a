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

/// <summary>
/// A Kestrel server on 127.0.0.1 with a free port that plays the remote side of <c>input.url</c>:
/// an image, redirect chains, a body that is too large (declared and streamed), a 404, a slow
/// answer. It records every request path, so a test can say that nothing was fetched.
/// Start it before the API host of a test: WebApplicationFactory watches hosts being built.
/// </summary>
public sealed class LocalImageServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private LocalImageServer(WebApplication app, byte[] image, int hugeBytes)
    {
        _app = app;
        Image = image;
        HugeBytes = hugeBytes;
    }

    /// <summary>The JPEG served by <c>/image.jpg</c> and at the end of a redirect chain.</summary>
    public byte[] Image { get; }

    /// <summary>Served at <c>/video.mp4</c>.</summary>
    public byte[] Video { get; set; } = [];

    public int HugeBytes { get; }

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Paths requested so far, in order.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    public Uri Url(string path) => new(BaseAddress, path);

    public static async Task<LocalImageServer> StartAsync(int hugeBytes = 1_000_000)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Testing" });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        var app = builder.Build();
        app.Urls.Add("http://127.0.0.1:0");
        var server = new LocalImageServer(app, TestImages.Scene(40, 320, 240), hugeBytes);
        server.Map();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
        server.BaseAddress = new Uri(address);
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private void Map()
    {
        _app.Use((context, next) =>
        {
            Requests.Enqueue(context.Request.Path + context.Request.QueryString);
            return next(context);
        });
        _app.MapGet("/image.jpg", () => Results.Bytes(Image, "image/jpeg"));
        _app.MapGet("/video.mp4", () => Results.Bytes(Video, "video/mp4"));
        // /redirect/3 answers 302 three times (relative Location), then the image.
        _app.MapGet("/redirect/{hops:int}", (int hops) => hops > 0 ? Results.Redirect($"/redirect/{hops - 1}") : Results.Bytes(Image, "image/jpeg"));
        _app.MapGet("/redirect-to-ftp", () => Results.Redirect("ftp://127.0.0.1/image.jpg"));
        _app.MapGet("/huge", () => Results.Bytes(new byte[HugeBytes], "image/jpeg"));
        _app.MapGet("/huge-streamed", async (HttpContext context) =>
        {
            // No Content-Length: chunked, so only counting the bytes finds out.
            context.Response.ContentType = "image/jpeg";
            var chunk = new byte[16 * 1024];
            try
            {
                for (var sent = 0; sent < HugeBytes; sent += chunk.Length)
                {
                    await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException)
            {
                // the API stopped reading: expected
            }
        });
        _app.MapGet("/missing", () => Results.NotFound());
        _app.MapGet("/photo-page", () => Results.Content("<!DOCTYPE html>\n<html><body><img src=\"/image.jpg\"></body></html>", "text/html"));
        _app.MapGet("/slow", async (HttpContext context) =>
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(10), context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                return Results.Empty;
            }

            return Results.Bytes(Image, "image/jpeg");
        });
    }
}
