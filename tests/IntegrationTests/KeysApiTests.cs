using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Async.Serving.Api.Auth;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

/// <summary><c>/v1/keys</c> against the real stack: a tenant's admin key lists, creates and revokes the tenant's own keys.</summary>
[Collection(ServingCollection.Name)]
public sealed class KeysApiTests(ServingFixture serving)
{
    private ApiKeyStore Store => serving.Api.Services.GetRequiredService<ApiKeyStore>();

    private static string NewTenant(string prefix) => $"{prefix}-{Guid.NewGuid().ToString("N")[..8]}";

    private static async Task<JsonElement> CreateAsync(HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/v1/keys", body);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        var created = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal($"/v1/keys/{created.GetProperty("id").GetString()}", response.Headers.Location?.OriginalString);
        return created;
    }

    [Fact]
    public async Task An_admin_key_creates_lists_and_revokes_its_tenants_keys_and_never_sees_a_secret_again()
    {
        var tenant = NewTenant("keys-api");
        var admin = await Store.CreateAsync(tenant, "admin", expiresAt: null, CancellationToken.None);
        using var client = serving.Client(key: admin.Key);

        var created = await CreateAsync(client, new { name = "ci", expires_in_days = 30 });
        var secret = created.GetProperty("key").GetString()!;
        Assert.StartsWith(ApiKeyStore.Prefix, secret, StringComparison.Ordinal);
        Assert.Equal(secret[..ApiKeyStore.DisplayPrefixLength], created.GetProperty("prefix").GetString());
        Assert.False(created.GetProperty("admin").GetBoolean()); // keys made through the API are not admin unless asked
        Assert.Equal("ci", created.GetProperty("name").GetString());

        // The new key works, for the same tenant.
        using var newClient = serving.Client(key: secret);
        Assert.Equal(HttpStatusCode.OK, (await newClient.GetAsync("/v1/models")).StatusCode);

        var listResponse = await client.GetAsync("/v1/keys");
        var text = await listResponse.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, listResponse.StatusCode);
        Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
        Assert.DoesNotContain(admin.Key, text, StringComparison.Ordinal);
        Assert.DoesNotContain("hash", text, StringComparison.Ordinal);
        var keys = JsonDocument.Parse(text).RootElement.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(2, keys.Count);
        Assert.Equal(created.GetProperty("id").GetString(), keys[0].GetProperty("id").GetString()); // newest first
        Assert.Equal(admin.Record.Id.ToString("N"), keys[1].GetProperty("id").GetString());
        Assert.True(keys[1].GetProperty("admin").GetBoolean());
        Assert.Equal(JsonValueKind.Null, keys[0].GetProperty("revoked_at").ValueKind);
        Assert.Equal(JsonValueKind.String, keys[0].GetProperty("expires_at").ValueKind);

        var revoke = await client.DeleteAsync($"/v1/keys/{created.GetProperty("id").GetString()}");
        Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
        Assert.Equal(JsonValueKind.String, (await revoke.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("revoked_at").ValueKind);
        await Problems.AssertAsync(await newClient.GetAsync("/v1/models"), HttpStatusCode.Unauthorized, "unauthorized");
        var after = await client.GetFromJsonAsync<JsonElement>("/v1/keys");
        Assert.Equal(JsonValueKind.String, after.GetProperty("data")[0].GetProperty("revoked_at").ValueKind);
    }

    [Fact]
    public async Task A_revocation_reaches_another_instance_that_had_the_key_cached()
    {
        var tenant = NewTenant("keys-revoke");
        var admin = await Store.CreateAsync(tenant, "admin", expiresAt: null, CancellationToken.None);
        var victim = await Store.CreateAsync(tenant, "victim", expiresAt: null, admin: false, CancellationToken.None);
        // Both instances cache keys for ten minutes: only the revocation message can stop the key in time.
        var cached = new Dictionary<string, string?> { ["Serving:Auth:KeyCacheDuration"] = "00:10:00" };
        await using var one = serving.CreateApi(cached);
        await using var two = serving.CreateApi(cached);
        using var victimOnTwo = serving.Client(two, victim.Key);
        Assert.Equal(HttpStatusCode.OK, (await victimOnTwo.GetAsync("/v1/models")).StatusCode); // now cached on two

        using var adminOnOne = serving.Client(one, admin.Key);
        Assert.Equal(HttpStatusCode.OK, (await adminOnOne.DeleteAsync($"/v1/keys/{victim.Record.Id:N}")).StatusCode);

        // The message crosses Redis asynchronously: wait for it, bounded, then the key stays refused.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        HttpStatusCode status;
        while ((status = (await victimOnTwo.GetAsync("/v1/models")).StatusCode) == HttpStatusCode.OK && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        await Problems.AssertAsync(await victimOnTwo.GetAsync("/v1/models"), HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task A_key_without_the_admin_scope_gets_403_and_other_tenants_keys_are_404()
    {
        var tenant = NewTenant("keys-scope");
        var admin = await Store.CreateAsync(tenant, "admin", expiresAt: null, CancellationToken.None);
        var plain = await Store.CreateAsync(tenant, "plain", expiresAt: null, admin: false, CancellationToken.None);
        var stranger = await Store.CreateAsync(NewTenant("keys-other"), "other", expiresAt: null, CancellationToken.None);
        using var plainClient = serving.Client(key: plain.Key);

        await Problems.AssertAsync(await plainClient.GetAsync("/v1/keys"), HttpStatusCode.Forbidden, "forbidden");
        await Problems.AssertAsync(await plainClient.PostAsJsonAsync("/v1/keys", new { name = "x" }), HttpStatusCode.Forbidden, "forbidden");
        await Problems.AssertAsync(await plainClient.DeleteAsync($"/v1/keys/{admin.Record.Id:N}"), HttpStatusCode.Forbidden, "forbidden");
        Assert.Equal(HttpStatusCode.OK, (await plainClient.GetAsync("/v1/models")).StatusCode); // the key itself still works

        using var adminClient = serving.Client(key: admin.Key);
        await Problems.AssertAsync(await adminClient.DeleteAsync($"/v1/keys/{stranger.Record.Id:N}"), HttpStatusCode.NotFound, "not_found");
        await Problems.AssertAsync(await adminClient.DeleteAsync("/v1/keys/not-a-key"), HttpStatusCode.NotFound, "not_found");
        Assert.Null((await Store.FindAsync(ApiKeyStore.Hash(stranger.Key), CancellationToken.None))!.RevokedAt);
        var list = await adminClient.GetFromJsonAsync<JsonElement>("/v1/keys");
        Assert.DoesNotContain(list.GetProperty("data").EnumerateArray(), k => k.GetProperty("id").GetString() == stranger.Record.Id.ToString("N"));

        await Problems.AssertAsync(await adminClient.PostAsJsonAsync("/v1/keys", new { expires_in_days = 0 }), HttpStatusCode.BadRequest, "input_invalid");
        using var development = serving.Client(); // the development key is an admin key
        Assert.Equal(HttpStatusCode.OK, (await development.GetAsync("/v1/keys")).StatusCode);
        using var unauthenticated = serving.Client(key: ApiKeyStore.NewKey());
        await Problems.AssertAsync(await unauthenticated.GetAsync("/v1/keys"), HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task The_last_admin_key_cannot_be_revoked_until_another_exists()
    {
        var tenant = NewTenant("keys-last");
        var admin = await Store.CreateAsync(tenant, "admin", expiresAt: null, CancellationToken.None);
        using var client = serving.Client(key: admin.Key);

        await Problems.AssertAsync(await client.DeleteAsync($"/v1/keys/{admin.Record.Id:N}"), HttpStatusCode.Conflict, "conflict");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/keys")).StatusCode); // still works

        var second = await CreateAsync(client, new { name = "second admin", admin = true });
        Assert.True(second.GetProperty("admin").GetBoolean());
        Assert.Equal(HttpStatusCode.OK, (await client.DeleteAsync($"/v1/keys/{admin.Record.Id:N}")).StatusCode);
        await Problems.AssertAsync(await client.GetAsync("/v1/keys"), HttpStatusCode.Unauthorized, "unauthorized");

        using var secondClient = serving.Client(key: second.GetProperty("key").GetString());
        await Problems.AssertAsync(await secondClient.DeleteAsync($"/v1/keys/{second.GetProperty("id").GetString()}"), HttpStatusCode.Conflict, "conflict");
    }

    [Fact]
    public async Task The_openapi_document_names_the_management_routes()
    {
        using var client = serving.Api.CreateClient();
        var document = await client.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var paths = document.GetProperty("paths");
        foreach (var (path, method, name) in new[]
        {
            ("/v1/keys", "get", "ListKeys"),
            ("/v1/keys", "post", "CreateKey"),
            ("/v1/keys/{id}", "delete", "RevokeKey"),
            ("/v1/webhooks/deliveries", "get", "ListWebhookDeliveries"),
            ("/v1/webhooks/deliveries/{id}/redeliver", "post", "RedeliverWebhook"),
            ("/v1/webhooks/endpoints/enable", "post", "EnableWebhookEndpoint"),
            ("/v1/webhooks/test", "post", "SendTestWebhook"),
        })
        {
            Assert.True(paths.TryGetProperty(path, out var item), $"{path} is missing from the OpenAPI document");
            Assert.True(item.TryGetProperty(method, out var operation), $"{method} {path} is missing");
            Assert.Equal(name, operation.GetProperty("operationId").GetString());
            Assert.False(string.IsNullOrEmpty(operation.GetProperty("summary").GetString()));
        }

        var events = paths.GetProperty("/v1/jobs/{id}/events").GetProperty("get").GetProperty("parameters").EnumerateArray()
            .Select(p => p.GetProperty("name").GetString()).ToList();
        Assert.Contains("Last-Event-ID", events);
        Assert.Contains("last_event_id", events);
    }

    [Fact]
    public async Task A_key_from_the_create_key_command_is_an_admin_key()
    {
        var tenant = NewTenant("keys-cli");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await CreateKeyCommand.RunAsync([tenant], serving.Api.Services.GetRequiredService<IConfiguration>(), stdout, stderr, CancellationToken.None);
        Assert.Equal(0, exit);
        var key = stdout.ToString().Trim();
        Assert.True((await Store.FindAsync(ApiKeyStore.Hash(key), CancellationToken.None))!.Admin);

        using var client = serving.Client(key: key);
        var list = await client.GetFromJsonAsync<JsonElement>("/v1/keys");
        Assert.True(Assert.Single(list.GetProperty("data").EnumerateArray()).GetProperty("admin").GetBoolean());
    }
}
