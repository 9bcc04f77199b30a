using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Async.Serving.Api.Observability;
using Async.Serving.Hosting;
using Async.Serving.Worker.Hosting;
using Async.Serving.Worker.Inference;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The API (in-memory server) and a worker host, both against the real RabbitMQ, Redis and
/// PostgreSQL that scripts/test.sh starts (addresses come from the environment it exports, or the
/// loopback defaults). Nothing here is mocked; a missing service fails the tests.
/// </summary>
public sealed class ServingFixture : IAsyncLifetime
{
    public static readonly TimeSpan JobWait = TimeSpan.FromSeconds(60);

    public string ApiKey { get; } = "sk_test_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant();

    public string Tenant { get; } = "tenant-" + Guid.NewGuid().ToString("N")[..8];

    public string DashboardPassword { get; } = Convert.ToHexString(RandomNumberGenerator.GetBytes(12));

    public WebApplicationFactory<Program> Api { get; private set; } = null!;

    public IHost Worker { get; private set; } = null!;

    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Async.Serving.sln")))
            {
                dir = dir.Parent;
            }

            return dir?.FullName ?? throw new InvalidOperationException("Async.Serving.sln not found above the test binaries.");
        }
    }

    public static string ModelsPath =>
        Environment.GetEnvironmentVariable("Serving__Models__Path") is { Length: > 0 } path ? path : Path.Combine(RepoRoot, "models");

    public async Task InitializeAsync()
    {
        Worker = BuildWorker();
        await Worker.StartAsync();
        Api = CreateApi();
        _ = Api.Server; // start the API now, so its bus connects while the first test prepares
    }

    public async Task DisposeAsync()
    {
        await Api.DisposeAsync();
        await Worker.StopAsync(TimeSpan.FromSeconds(30));
        Worker.Dispose();
    }

    /// <summary>An API host; <paramref name="overrides"/> change its configuration (for example a broker that is down).</summary>
    public WebApplicationFactory<Program> CreateApi(IDictionary<string, string?>? overrides = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Serving:Models:Path"] = ModelsPath,
            ["Serving:Auth:DevelopmentKey"] = ApiKey,
            ["Serving:Auth:DevelopmentTenant"] = Tenant,
            ["Serving:Hangfire:DashboardPassword"] = DashboardPassword,
            // Tests poll many jobs at once with one key; the limiter has its own test.
            ["Serving:RateLimits:PermitsPerSecond"] = "100000",
            ["Serving:RateLimits:Burst"] = "100000",
            // Every test client shares one address; the limit on key lookups per client has its own test.
            ["Serving:Auth:LookupsPerClient"] = "100000",
            // Hangfire servers share one PostgreSQL: only the hosts of the webhook tests run one, so a
            // delivery is always made by a host configured for the local receivers.
            ["Serving:Hangfire:RunServer"] = "false",
            // A schema of their own: Hangfire servers of another build on the same PostgreSQL (an API
            // started from another checkout) would otherwise take, and fail, the deliveries and retries.
            ["Serving:Hangfire:SchemaName"] = "hangfire_tests",
            // Only the webhook tests' hosts relay the outbox, so a test can drive a relay of its own.
            ["Serving:Webhooks:RunRelay"] = "false",
            // A management port of its own: a test host on real sockets (UseKestrel) must not take, or
            // fail on, the 9465 of the stack scripts/up.sh runs.
            ["Serving:Management:Port"] = ScriptRunner.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            // Tests submit the same images again and again and expect each to run (to cancel it, watch
            // it start, count its attempts): the result cache is on only where CacheTests turn it on.
            ["Serving:Cache:Enabled"] = "false",
        };
        foreach (var (k, v) in overrides ?? new Dictionary<string, string?>())
        {
            settings[k] = v;
        }

        return new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            b.UseEnvironment("Testing");
            foreach (var (k, v) in settings)
            {
                b.UseSetting(k, v);
            }

            b.UseSetting("Logging:LogLevel:Default", "Warning");
            b.UseSetting("Logging:LogLevel:Microsoft.AspNetCore", "Warning");
        });
    }

    /// <summary>Serves <paramref name="api"/> on 127.0.0.1 and a free port (for a browser, curl or the .NET client); returns its base URL, without a trailing slash.</summary>
    public static string StartKestrel(WebApplicationFactory<Program> api)
    {
        api.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        api.StartServer();
        return api.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
    }

    public HttpClient Client(WebApplicationFactory<Program>? api = null, string? key = null)
    {
        var client = (api ?? Api).CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key ?? ApiKey);
        return client;
    }

    /// <summary>
    /// A client of the API's management port (<c>/metrics</c>): the in-memory server has no sockets,
    /// so each request is marked as arriving on <see cref="ManagementOptions.Port"/>, as Kestrel would.
    /// </summary>
    public static HttpClient ManagementClient(WebApplicationFactory<Program> api)
    {
        var port = api.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ManagementOptions>>().Value.Port;
        return new HttpClient(api.Server.CreateHandler(context => context.Connection.LocalPort = port)) { BaseAddress = api.Server.BaseAddress };
    }

    internal ModelHost Models => Worker.Services.GetRequiredService<ModelHost>();

    /// <summary>The worker's pipeline of this type, with the models it loaded (<c>Get(modelId)</c>).</summary>
    internal TPipeline Pipeline<TPipeline>()
        where TPipeline : IPipeline => Worker.Services.GetRequiredService<TPipeline>();

    /// <summary>Polls a job until it is terminal, at most <see cref="JobWait"/>.</summary>
    public static async Task<JsonElement> WaitForTerminalAsync(HttpClient client, string id)
    {
        var deadline = DateTime.UtcNow + JobWait;
        while (true)
        {
            var job = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
            var status = job.GetProperty("status").GetString();
            if (status is "succeeded" or "failed" or "cancelled" or "expired")
            {
                return job;
            }

            Assert.True(DateTime.UtcNow < deadline, $"job {id} still {status} after {JobWait.TotalSeconds} s");
            await Task.Delay(50);
        }
    }

    /// <summary>A worker host (not started) serving the models of <paramref name="modelsPath"/> (default: the shared repository).</summary>
    public static IHost BuildWorker(string? modelsPath = null, IDictionary<string, string?>? overrides = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Testing" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:Redis"] = Environment.GetEnvironmentVariable("ConnectionStrings__Redis") ?? "127.0.0.1:6379",
            ["Serving:Models:Path"] = modelsPath ?? ModelsPath,
            ["Serving:Worker:MetricsPort"] = "0",
            ["Logging:LogLevel:Default"] = "Warning",
        });
        builder.Configuration.AddInMemoryCollection(overrides ?? new Dictionary<string, string?>());
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.AddServingDefaults();
        builder.AddServingTelemetry("async-serving-worker");
        builder.AddInference();
        builder.AddWorkerBus();
        return builder.Build();
    }
}

[CollectionDefinition(Name)]
public sealed class ServingCollection : ICollectionFixture<ServingFixture>
{
    public const string Name = "serving";
}
