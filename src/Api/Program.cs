using Async.Serving.Api.Auth;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Health;
using Async.Serving.Api.Jobs;
using Async.Serving.Api.Models;
using Async.Serving.Api.Security;
using Async.Serving.Hosting;
using Prometheus;

var builder = WebApplication.CreateBuilder(args);
builder.AddServingDefaults();
builder.AddApiKeyAuth();
builder.AddNetworkGuard();
builder.AddJobs();
builder.AddServingHealthChecks();
builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = ApiProblems.AddCode);
builder.Services.AddOpenApi();
builder.Services.ConfigureHttpJsonOptions(o =>
    o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower);

var app = builder.Build();
// Read the model repository now: a broken config.json stops the API at start, naming file and field.
app.Services.GetRequiredService<Async.Serving.Models.ModelRepository>();
app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseHttpMetrics();
app.UseAuthentication();
app.UseAuthorization();

app.MapOpenApi();
app.MapServingHealth();
app.MapMetrics("/metrics");
app.MapJobsApi();
app.MapModelsApi();
app.Run();

/// <summary>Entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
