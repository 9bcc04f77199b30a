using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Async.Serving.Api.Auth;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

[Collection(ServingCollection.Name)]
public sealed class ApiKeysTests(ServingFixture serving)
{
    private ApiKeyStore Store => serving.Api.Services.GetRequiredService<ApiKeyStore>();

    private static string NewTenant(string prefix) => $"{prefix}-{Guid.NewGuid().ToString("N")[..8]}";

    private static async Task<string> SubmitAsync(HttpClient client)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "image.embed",
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(40, 64, 48)) },
        });
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    [Fact]
    public async Task A_job_is_visible_to_its_tenant_only()
    {
        var a = await Store.CreateAsync(NewTenant("acme"), "a", expiresAt: null, CancellationToken.None);
        var b = await Store.CreateAsync(NewTenant("globex"), "b", expiresAt: null, CancellationToken.None);
        using var clientA = serving.Client(key: a.Key);
        using var clientB = serving.Client(key: b.Key);
        using var development = serving.Client();

        var id = await SubmitAsync(clientA);

        Assert.Equal(HttpStatusCode.OK, (await clientA.GetAsync($"/v1/jobs/{id}")).StatusCode);
        await Problems.AssertAsync(await clientB.GetAsync($"/v1/jobs/{id}"), HttpStatusCode.NotFound, "not_found");
        await Problems.AssertAsync(await development.GetAsync($"/v1/jobs/{id}"), HttpStatusCode.NotFound, "not_found");
        var job = await ServingFixture.WaitForTerminalAsync(clientA, id);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        await Problems.AssertAsync(await clientB.GetAsync($"/v1/jobs/{id}"), HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task Revoked_and_expired_keys_get_401_and_a_valid_key_works()
    {
        var tenant = NewTenant("keys");
        var valid = await Store.CreateAsync(tenant, "valid", DateTimeOffset.UtcNow.AddDays(1), CancellationToken.None);
        var revoked = await Store.CreateAsync(tenant, "revoked", expiresAt: null, CancellationToken.None);
        Assert.True(await Store.RevokeAsync(revoked.Record.Id, CancellationToken.None));
        var expired = await Store.CreateAsync(tenant, "expired", DateTimeOffset.UtcNow.AddSeconds(-1), CancellationToken.None);

        using var validClient = serving.Client(key: valid.Key);
        Assert.Equal(HttpStatusCode.OK, (await validClient.GetAsync("/v1/models")).StatusCode);
        using var revokedClient = serving.Client(key: revoked.Key);
        await Problems.AssertAsync(await revokedClient.GetAsync("/v1/models"), HttpStatusCode.Unauthorized, "unauthorized");
        using var expiredClient = serving.Client(key: expired.Key);
        await Problems.AssertAsync(await expiredClient.GetAsync("/v1/models"), HttpStatusCode.Unauthorized, "unauthorized");
        using var unknownClient = serving.Client(key: ApiKeyStore.NewKey());
        await Problems.AssertAsync(await unknownClient.GetAsync("/v1/models"), HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task Revocation_takes_effect_once_the_cached_lookup_expires()
    {
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Auth:KeyCacheDuration"] = "00:00:00" });
        var created = await api.Services.GetRequiredService<ApiKeyStore>().CreateAsync(NewTenant("revoke"), "r", null, CancellationToken.None);
        using var client = serving.Client(api, created.Key);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/models")).StatusCode);

        Assert.True(await Store.RevokeAsync(created.Record.Id, CancellationToken.None));

        await Problems.AssertAsync(await client.GetAsync("/v1/models"), HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task The_create_key_command_prints_one_line_that_authenticates()
    {
        var configuration = serving.Api.Services.GetRequiredService<IConfiguration>();
        var tenant = NewTenant("cli");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exit = await CreateKeyCommand.RunAsync([tenant, "--name", "ci", "--expires-days", "30"], configuration, stdout, stderr, CancellationToken.None);

        Assert.Equal(0, exit);
        var lines = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var key = Assert.Single(lines).TrimEnd('\r');
        Assert.StartsWith(ApiKeyStore.Prefix, key, StringComparison.Ordinal);
        Assert.Contains(tenant, stderr.ToString(), StringComparison.Ordinal);
        var record = await Store.FindAsync(ApiKeyStore.Hash(key), CancellationToken.None);
        Assert.NotNull(record);
        Assert.Equal(tenant, record.TenantId);
        Assert.Equal("ci", record.Name);
        Assert.InRange(record.ExpiresAt!.Value, DateTimeOffset.UtcNow.AddDays(29), DateTimeOffset.UtcNow.AddDays(31));

        using var client = serving.Client(key: key);
        var id = await SubmitAsync(client);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/v1/jobs/{id}")).StatusCode);
        using var development = serving.Client();
        await Problems.AssertAsync(await development.GetAsync($"/v1/jobs/{id}"), HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task The_create_key_command_refuses_bad_arguments_without_printing_a_key()
    {
        var configuration = serving.Api.Services.GetRequiredService<IConfiguration>();
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exit = await CreateKeyCommand.RunAsync(["bad tenant!"], configuration, stdout, stderr, CancellationToken.None);

        Assert.Equal(2, exit);
        Assert.Empty(stdout.ToString());
        Assert.Contains("usage", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Each_key_has_its_own_rate_limit_and_excess_requests_get_429_with_retry_after()
    {
        // A key of its own: buckets live in Redis and are shared by every API instance, so emptying the
        // fixture key's bucket here would refuse the other tests' requests for up to a second.
        var key = "sk_test_limit_" + Guid.NewGuid().ToString("N");
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Auth:DevelopmentKey"] = key,
            ["Serving:Auth:DevelopmentTenant"] = NewTenant("limit-dev"),
            ["Serving:RateLimits:PermitsPerSecond"] = "1",
            ["Serving:RateLimits:Burst"] = "2",
        });
        using var client = serving.Client(api, key);

        var responses = new List<HttpResponseMessage>();
        for (var i = 0; i < 6; i++)
        {
            responses.Add(await client.GetAsync("/v1/models"));
        }

        Assert.Equal(HttpStatusCode.OK, responses[0].StatusCode);
        var limited = responses.FirstOrDefault(r => r.StatusCode == HttpStatusCode.TooManyRequests);
        Assert.NotNull(limited);
        await Problems.AssertAsync(limited, HttpStatusCode.TooManyRequests, "rate_limited");
        var retryAfter = limited.Headers.RetryAfter?.Delta;
        Assert.NotNull(retryAfter);
        Assert.InRange(retryAfter.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2));

        // Another key of the same API still has its whole bucket.
        var other = await api.Services.GetRequiredService<ApiKeyStore>().CreateAsync(NewTenant("limit"), "other", null, CancellationToken.None);
        using var otherClient = serving.Client(api, other.Key);
        Assert.Equal(HttpStatusCode.OK, (await otherClient.GetAsync("/v1/models")).StatusCode);

        // Requests without a valid key are refused by auth, not counted.
        using var anonymous = api.CreateClient();
        await Problems.AssertAsync(await anonymous.GetAsync("/v1/models"), HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
    }
}
