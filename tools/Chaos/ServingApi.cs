using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Async.Serving.Chaos;

/// <summary>What one HTTP call got: a status (0 when no answer came: refused, reset, timed out) and the JSON body, if any.</summary>
internal sealed record Answer(int Status, JsonElement? Body, TimeSpan? RetryAfter = null, bool Replayed = false)
{
    public bool Reached => Status != 0;

    public string? ProblemCode =>
        Body is { ValueKind: JsonValueKind.Object } b && b.TryGetProperty("code", out var c) ? c.GetString() : null;
}

/// <summary>The public HTTP API as a client that expects outages uses it: every failure is an <see cref="Answer"/>, never an exception.</summary>
internal sealed class ServingApi : IDisposable
{
    private readonly HttpClient _http;

    public ServingApi(Uri baseAddress, string apiKey)
    {
        _http = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 64,
            ConnectTimeout = TimeSpan.FromSeconds(3),
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        })
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromSeconds(30),
        };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    public void Dispose() => _http.Dispose();

    public Task<Answer> SubmitAsync(byte[] json, string idempotencyKey, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = new ByteArrayContent(json) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Add("Idempotency-Key", idempotencyKey);
        return SendAsync(request, cancellationToken);
    }

    public Task<Answer> GetAsync(string path, CancellationToken cancellationToken) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Get, path), cancellationToken);

    /// <summary>GET of an absolute URL (the worker's health port), without the API key.</summary>
    public async Task<int> StatusOfAsync(Uri url, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        try
        {
            using var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            using var response = await plain.SendAsync(request, cancellationToken).ConfigureAwait(false);
            return (int)response.StatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return 0;
        }
    }

    private async Task<Answer> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using (request)
        {
            try
            {
                using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
                var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                JsonElement? body = null;
                if (text.Length > 0)
                {
                    try
                    {
                        body = JsonDocument.Parse(text).RootElement;
                    }
                    catch (JsonException)
                    {
                        // Not JSON (a proxy's page, a truncated answer): the status says enough.
                    }
                }

                return new Answer(
                    (int)response.StatusCode, body, RetryAfter(response),
                    response.Headers.TryGetValues("Idempotent-Replayed", out var replayed) && replayed.Contains("true"));
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                return new Answer(0, null);
            }
        }
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response) =>
        response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable or HttpStatusCode.Conflict
            ? response.Headers.RetryAfter?.Delta
            : null;
}
