using Async.Serving.Api.Auth;
using Async.Serving.Api.Batches;
using Async.Serving.Api.Cache;
using Async.Serving.Api.DeadLetters;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Hangfire;
using Async.Serving.Api.Health;
using Async.Serving.Api.Jobs;
using Async.Serving.Api.Ledger;
using Async.Serving.Api.Maintenance;
using Async.Serving.Api.Models;
using Async.Serving.Api.Observability;
using Async.Serving.Api.OpenApi;
using Async.Serving.Api.RateLimiting;
using Async.Serving.Api.Routing;
using Async.Serving.Api.Security;
using Async.Serving.Api.Webhooks;
using Async.Serving.Hosting;
using Npgsql;
using Prometheus;

if (args is [CreateKeyCommand.Verb, ..])
{
    return await CreateKeyCommand.RunAsync(args[1..]);
}

var builder = WebApplication.CreateBuilder(args);
builder.AddServingDefaults(ApiErrorsExtensions.FailFast);
builder.AddServingTelemetry("async-serving-api", databases => databases.AddNpgsql());
builder.AddApiErrors();
builder.AddApiKeyAuth();
builder.AddPerKeyRateLimiting();
builder.AddNetworkGuard();
builder.AddJobs();
builder.AddModelRouting();
builder.AddResultCache();
builder.AddWebhooks();
builder.AddServingHealthChecks();
builder.AddServingHangfire();
builder.AddLedger();
builder.AddBatches(); // after AddLedger: it extends the ledger writer's sink
builder.AddMaintenance();
builder.AddDeadLetters();
builder.AddServingOpenApi();
builder.AddManagementPort();
builder.Services.ConfigureHttpJsonOptions(o =>
{
    o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower;
    // Numbers are numbers: no "12" for 12 (the web default), and the document types them strictly.
    o.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict;
});

var app = builder.Build();
// Read the model repository now: a broken config.json stops the API at start, naming file and field.
app.Services.GetRequiredService<Async.Serving.Models.ModelRepository>();
// Connect to Redis now: while Redis is down the first connect attempt takes its ConnectTimeout, at
// start rather than in the first request (afterwards commands fail fast, see ApiErrorsExtensions).
app.Services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>();
app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseRequestLimits(); // 414 and 431 as problems, before anything reads the request
app.UseManagementPort(); // /metrics, /healthz, /readyz on Serving:Management:Port only
app.UseHttpMetrics();
app.UseAuthentication();
app.UseAuthorization();
app.UseRateLimiter(); // after authorisation: only requests with a valid key take a token
app.MapServingDashboard();

app.MapServingOpenApi();
app.MapServingHealth();
// The /v1 routes, each limited per API key.
var v1 = app.MapGroup("").RequireRateLimiting(PerKeyRateLimiting.Policy).ProducesCommonProblems();
v1.MapJobsApi();
v1.MapBatchesApi();
v1.MapModelsApi();
v1.MapRoutingApi();
v1.MapWebhooksApi();
v1.MapUsageApi();
v1.MapKeysApi();
await app.RunAsync();
return 0;

/// <summary>Entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
