using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Async.Serving.Chaos;

/// <summary>
/// What one HTTP call got: a status (0 when no answer came: refused, reset, timed out), the JSON body,
/// if any, and which API instance answered (<see cref="Via"/>, an index into <see cref="ChaosOptions.ApiUrls"/>).
/// </summary>
internal sealed record Answer(int Status, JsonElement? Body, TimeSpan? RetryAfter = null, bool Replayed = false, int Via = 0)
{
    public bool Reached => Status != 0;

    public string? ProblemCode =>
        Body is { ValueKind: JsonValueKind.Object } b && b.TryGetProperty("code", out var c) ? c.GetString() : null;
}

/// <summary>
/// The public HTTP API, over one or more API instances, as a client that expects outages uses it:
/// every failure is an <see cref="Answer"/>, never an exception. Reads go to the instances in turn and
/// wait out a 429 (its <c>Retry-After</c>) like a client that respects the rate limit.
/// </summary>
internal sealed class ServingApi : IDisposable
{
    private static readonly TimeSpan RateLimitedFor = TimeSpan.FromSeconds(60);

    private readonly HttpClient[] _instances;
    private int _next;

    public ServingApi(IReadOnlyList<Uri> baseAddresses, string apiKey)
    {
        _instances = [.. baseAddresses.Select(address =>
        {
            var http = new HttpClient(new SocketsHttpHandler
            {
                MaxConnectionsPerServer = 64,
                ConnectTimeout = TimeSpan.FromSeconds(3),
                PooledConnectionLifetime = TimeSpan.FromMinutes(1),
            })
            {
                BaseAddress = address,
                Timeout = TimeSpan.FromSeconds(30),
            };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
            return http;
        })];
    }

    public int Instances => _instances.Length;

    public void Dispose()
    {
        foreach (var http in _instances)
        {
            http.Dispose();
        }
    }

    /// <summary>A submit to instance <paramref name="turn"/> modulo their number.</summary>
    public Task<Answer> SubmitAsync(byte[] json, string idempotencyKey, int turn, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = new ByteArrayContent(json) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Add("Idempotency-Key", idempotencyKey);
        return SendAsync(request, turn % _instances.Length, cancellationToken);
    }

    /// <summary>A GET to the next instance; a 429 is waited out and asked again (of the next one), for up to a minute.</summary>
    public async Task<Answer> GetAsync(string path, CancellationToken cancellationToken)
    {
        var limitedSince = DateTime.UtcNow;
        while (true)
        {
            var answer = await SendAsync(new HttpRequestMessage(HttpMethod.Get, path), Turn(), cancellationToken).ConfigureAwait(false);
            if (answer.Status != 429 || DateTime.UtcNow - limitedSince > RateLimitedFor)
            {
                return answer;
            }

            await Task.Delay(answer.RetryAfter is { } wait && wait < TimeSpan.FromSeconds(2) ? wait : TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>One GET to instance <paramref name="instance"/>, answered as it came (the rate-limit probe).</summary>
    public Task<Answer> GetOnceAsync(string path, int instance, CancellationToken cancellationToken) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Get, path), instance % _instances.Length, cancellationToken);

    /// <summary>GET of an absolute URL (a health port), without the API key.</summary>
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

    private int Turn() => (int)((uint)Interlocked.Increment(ref _next) % (uint)_instances.Length);

    private async Task<Answer> SendAsync(HttpRequestMessage request, int instance, CancellationToken cancellationToken)
    {
        using (request)
        {
            try
            {
                using var response = await _instances[instance].SendAsync(request, cancellationToken).ConfigureAwait(false);
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
                    response.Headers.TryGetValues("Idempotent-Replayed", out var replayed) && replayed.Contains("true"), instance);
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                return new Answer(0, null, Via: instance);
            }
        }
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response) =>
        response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable or HttpStatusCode.Conflict
            ? response.Headers.RetryAfter?.Delta
            : null;
}
