using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The RabbitMQ management HTTP API of the test broker (127.0.0.1, port <c>SERVING_RABBIT_MGMT_PORT</c>
/// or 15672, guest/guest), in the test run's virtual host (<c>Serving__RabbitMq__VirtualHost</c>) unless told otherwise.
/// </summary>
internal sealed class RabbitManagement : IDisposable
{
    private readonly HttpClient _http;

    public RabbitManagement(string? vhost = null)
    {
        VirtualHost = vhost ?? (Environment.GetEnvironmentVariable("Serving__RabbitMq__VirtualHost") is { Length: > 0 } v ? v : "/");
        var port = Environment.GetEnvironmentVariable("SERVING_RABBIT_MGMT_PORT") is { Length: > 0 } p ? p : "15672";
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/api/"), Timeout = TimeSpan.FromSeconds(30) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String("guest:guest"u8.ToArray()));
    }

    public string VirtualHost { get; }

    private string V => Uri.EscapeDataString(VirtualHost);

    /// <summary>The queue's JSON, or null when it does not exist.</summary>
    public async Task<JsonElement?> GetQueueAsync(string queue)
    {
        using var response = await _http.GetAsync($"queues/{V}/{Uri.EscapeDataString(queue)}");
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }

        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    public async Task<string?> QueueTypeAsync(string queue) =>
        await GetQueueAsync(queue) is { } q ? q.GetProperty("type").GetString() : null;

    /// <summary>Declares a queue as an older version would have (no arguments: classic), or with <paramref name="arguments"/>.</summary>
    public async Task DeclareQueueAsync(string queue, object? arguments = null) =>
        (await _http.PutAsJsonAsync($"queues/{V}/{Uri.EscapeDataString(queue)}", new { durable = true, auto_delete = false, arguments = arguments ?? new { } }))
            .EnsureSuccessStatusCode();

    public async Task DeleteQueueAsync(string queue) =>
        (await _http.DeleteAsync($"queues/{V}/{Uri.EscapeDataString(queue)}")).EnsureSuccessStatusCode();

    /// <summary>Publishes one message straight to a queue through the default exchange.</summary>
    public async Task PublishToQueueAsync(string queue, string payload)
    {
        var response = await _http.PostAsJsonAsync($"exchanges/{V}/amq.default/publish",
            new { properties = new { }, routing_key = queue, payload, payload_encoding = "string" });
        response.EnsureSuccessStatusCode();
        Assert.True((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("routed").GetBoolean(), $"not routed to {queue}");
    }

    public async Task CreateVirtualHostAsync()
    {
        (await _http.PutAsync($"vhosts/{V}", null)).EnsureSuccessStatusCode();
        (await _http.PutAsync($"permissions/{V}/guest",
            new StringContent("""{"configure":".*","write":".*","read":".*"}""", Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
    }

    public async Task DeleteVirtualHostAsync() => await _http.DeleteAsync($"vhosts/{V}");

    public void Dispose() => _http.Dispose();
}
