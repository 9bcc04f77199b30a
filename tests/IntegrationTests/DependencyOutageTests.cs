using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Async.Serving.Api.Auth;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Async.Serving.IntegrationTests;

/// <summary>What the API answers while PostgreSQL or Redis is down, and what unknown keys cost.</summary>
[Collection(ServingCollection.Name)]
public sealed partial class DependencyOutageTests(ServingFixture serving)
{
    private ApiKeyStore Store => serving.Api.Services.GetRequiredService<ApiKeyStore>();

    private static string NewTenant(string prefix) => $"{prefix}-{Guid.NewGuid().ToString("N")[..8]}";

    private static JsonContent ImageJob(int seed) =>
        JsonContent.Create(new { pipeline = "image.embed", input = new { base64 = Convert.ToBase64String(TestImages.Scene(seed, 64, 48)) } });

    [Fact]
    public async Task While_postgres_is_down_verified_keys_keep_working_and_unchecked_keys_get_503()
    {
        var postgres = new NpgsqlConnectionStringBuilder(serving.Api.Services.GetRequiredService<IConfiguration>().GetConnectionString("Postgres"));
        await using var forwarder = new TcpForwarder(postgres.Host!, postgres.Port);
        var throughForwarder = new NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Host = "127.0.0.1", Port = forwarder.Port };
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["ConnectionStrings:Postgres"] = throughForwarder.ConnectionString,
            // Every request asks PostgreSQL: the outage is met at once, not after the cache expired.
            ["Serving:Auth:KeyCacheDuration"] = "00:00:00",
            ["Serving:Ledger:RunWriter"] = "false",
        });
        var tenant = NewTenant("pgdown");
        var verified = await Store.CreateAsync(tenant, "verified", expiresAt: null, CancellationToken.None);
        var unchecked_ = await Store.CreateAsync(tenant, "unchecked", expiresAt: null, CancellationToken.None);
        using var verifiedClient = serving.Client(api, verified.Key);
        Assert.Equal(HttpStatusCode.OK, (await verifiedClient.GetAsync("/v1/models")).StatusCode);

        forwarder.Stop();

        Assert.Equal(HttpStatusCode.OK, (await verifiedClient.GetAsync("/v1/models")).StatusCode);
        var submitted = await verifiedClient.PostAsync("/v1/jobs", ImageJob(70));
        await Problems.AssertStatusAsync(submitted, HttpStatusCode.Accepted);

        using var uncheckedClient = serving.Client(api, unchecked_.Key);
        var refused = await uncheckedClient.PostAsync("/v1/jobs", ImageJob(71));
        await Problems.AssertAsync(refused, HttpStatusCode.ServiceUnavailable, "auth_unavailable");
        Assert.NotNull(refused.Headers.RetryAfter);
        using var unknownClient = serving.Client(api, ApiKeyStore.NewKey());
        await Problems.AssertAsync(await unknownClient.GetAsync("/v1/models"), HttpStatusCode.ServiceUnavailable, "auth_unavailable");

        // The development key needs no database.
        using var development = serving.Client(api);
        Assert.Equal(HttpStatusCode.OK, (await development.GetAsync("/v1/models")).StatusCode);
    }

    [Fact]
    public async Task While_redis_is_down_every_route_answers_503_store_unavailable()
    {
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["ConnectionStrings:Redis"] = "127.0.0.1:1,abortConnect=false", // nothing listens there
            ["Serving:Ledger:RunWriter"] = "false",
        });
        using var client = serving.Client(api);

        var submit = await client.PostAsync("/v1/jobs", ImageJob(72));
        await Problems.AssertAsync(submit, HttpStatusCode.ServiceUnavailable, "store_unavailable");
        Assert.NotNull(submit.Headers.RetryAfter);

        using var keyed = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = ImageJob(72) };
        keyed.Headers.Add("Idempotency-Key", "outage-" + Guid.NewGuid().ToString("N"));
        await Problems.AssertAsync(await client.SendAsync(keyed), HttpStatusCode.ServiceUnavailable, "store_unavailable");

        var list = await client.GetAsync("/v1/jobs");
        await Problems.AssertAsync(list, HttpStatusCode.ServiceUnavailable, "store_unavailable");
        Assert.NotNull(list.Headers.RetryAfter);
        await Problems.AssertAsync(await client.GetAsync("/v1/jobs/0000000000000000000000000000dead"), HttpStatusCode.ServiceUnavailable, "store_unavailable");
    }

    [Fact]
    public async Task Random_keys_from_one_client_cost_a_bounded_number_of_postgres_lookups()
    {
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Auth:LookupsPerClient"] = "5",
            ["Serving:Auth:LookupsPerClientPerMinute"] = "1",
        });
        using var metrics = ServingFixture.ManagementClient(api);
        var before = await LookupsAsync(metrics);

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 40; i++)
        {
            using var client = serving.Client(api, ApiKeyStore.NewKey());
            var response = await client.GetAsync("/v1/models");
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                limited ??= response;
            }
            else
            {
                await Problems.AssertAsync(response, HttpStatusCode.Unauthorized, "unauthorized");
            }
        }

        var lookups = await LookupsAsync(metrics) - before;
        Assert.InRange(lookups, 1, 5 + 1); // the bucket, plus at most one token refilled while the test ran
        Assert.NotNull(limited);
        await Problems.AssertAsync(limited, HttpStatusCode.TooManyRequests, "rate_limited");
        Assert.NotNull(limited.Headers.RetryAfter);

        // A key already known keeps working from the same client: it costs no lookup.
        using var development = serving.Client(api);
        Assert.Equal(HttpStatusCode.OK, (await development.GetAsync("/v1/models")).StatusCode);
    }

    /// <summary>The sum of <c>serving_api_key_lookups_total</c> over its outcomes, from the management port's /metrics.</summary>
    private static async Task<double> LookupsAsync(HttpClient client)
    {
        var text = await client.GetStringAsync("/metrics");
        return LookupLine().Matches(text).Sum(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
    }

    [GeneratedRegex(@"^serving_api_key_lookups_total\{[^}]*\} (\S+)$", RegexOptions.Multiline)]
    private static partial Regex LookupLine();
}
