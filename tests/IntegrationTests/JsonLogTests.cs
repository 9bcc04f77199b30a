using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Async.Serving.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// <c>Serving:Logging:Format=json</c>: the console log is one JSON object per line, with the job's
/// scope on the worker's job lines. The lines are written by the host's own JSON console formatter
/// into a buffer (stdout is shared by every test running in parallel).
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class JsonLogTests(ServingFixture serving)
{
    [Fact]
    public async Task A_worker_with_json_logs_writes_one_json_object_a_line_with_the_job_and_tenant_in_scope()
    {
        using var models = new PrivateModels();
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Models:Path"] = models.Path });
        using var client = serving.Client(api);
        // A job that expires in the queue before any worker serves its model: the worker logs that it skipped it.
        var response = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "image.embed",
            model = models.Name,
            input = new { base64 = Convert.ToBase64String(TestImages.Scene(611, 64, 64)) },
            ttl_seconds = 1,
        });
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        await Task.Delay(TimeSpan.FromSeconds(1.2));

        using var worker = ServingFixture.BuildWorker(models.Path, new Dictionary<string, string?>
        {
            [ServingLogging.FormatKey] = "json",
            ["Logging:LogLevel:Async.Serving"] = "Information",
        });
        var console = worker.Services.GetRequiredService<IOptionsMonitor<ConsoleLoggerOptions>>().CurrentValue;
        Assert.Equal(ConsoleFormatterNames.Json, console.FormatterName);
        var formatter = worker.Services.GetServices<ConsoleFormatter>().Single(f => f.Name == console.FormatterName);
        using var capture = new FormatterCapture(formatter);
        worker.Services.GetRequiredService<ILoggerFactory>().AddProvider(capture);

        await worker.StartAsync();
        try
        {
            var deadline = DateTime.UtcNow + ServingFixture.JobWait;
            while (!capture.Text.Contains(id, StringComparison.Ordinal))
            {
                Assert.True(DateTime.UtcNow < deadline, $"the worker logged nothing about job {id}");
                await Task.Delay(100);
            }
        }
        finally
        {
            await worker.StopAsync(TimeSpan.FromSeconds(30));
        }

        // A failure's stack trace and a message with line breaks stay inside their line.
        var logger = worker.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Async.Serving.Tests");
        try
        {
            throw new InvalidOperationException("first line\nsecond line");
        }
        catch (InvalidOperationException ex)
        {
            Failed(logger, ex);
        }

        var entries = Entries(capture);
        Assert.Contains(entries, e => e.TryGetProperty("Exception", out var text) && text.GetString()!.Contains("second line", StringComparison.Ordinal));

        var job = entries.First(e => e.GetProperty("Message").GetString()!.Contains(id, StringComparison.Ordinal));
        Assert.StartsWith("Async.Serving.Worker.Consumers", job.GetProperty("Category").GetString(), StringComparison.Ordinal);
        var scope = job.GetProperty("Scopes").EnumerateArray().Single(s => s.ValueKind == JsonValueKind.Object && s.TryGetProperty("JobId", out _));
        Assert.Equal(id, scope.GetProperty("JobId").GetString());
        Assert.Equal(serving.Tenant, scope.GetProperty("TenantId").GetString());
        Assert.Equal(models.Name + "@1", scope.GetProperty("Model").GetString());
    }

    [Fact]
    public async Task An_api_with_json_logs_puts_the_tenant_and_the_trace_id_in_scope_of_a_jobs_request()
    {
        await using var api = serving.CreateApi(new Dictionary<string, string?>
        {
            [ServingLogging.FormatKey] = "json",
            ["Logging:LogLevel:Async.Serving"] = "Information",
        });
        var console = api.Services.GetRequiredService<IOptionsMonitor<ConsoleLoggerOptions>>().CurrentValue;
        Assert.Equal(ConsoleFormatterNames.Json, console.FormatterName);
        using var capture = new FormatterCapture(api.Services.GetServices<ConsoleFormatter>().Single(f => f.Name == console.FormatterName));
        api.Services.GetRequiredService<ILoggerFactory>().AddProvider(capture);
        using var client = serving.Client(api);

        // A refused input.url is logged while the submit is handled.
        var refused = await client.PostAsJsonAsync("/v1/jobs", new { pipeline = "image.embed", input = new { url = "http://127.0.0.1:1/image.jpg" } });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);

        var line = Entries(capture).First(e => e.GetProperty("Category").GetString() == "Async.Serving.Api.Jobs.InputFetcher");
        var scopes = line.GetProperty("Scopes").EnumerateArray().Where(s => s.ValueKind == JsonValueKind.Object).ToList();
        Assert.Contains(scopes, s => s.TryGetProperty("TenantId", out var tenant) && tenant.GetString() == serving.Tenant);
        Assert.Contains(scopes, s => s.TryGetProperty("TraceId", out var trace) && trace.GetString() is { Length: 32 } id && id != new string('0', 32));
    }

    [Fact]
    public void An_unknown_log_format_stops_the_host_at_start()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => ServingFixture.BuildWorker(overrides: new Dictionary<string, string?> { [ServingLogging.FormatKey] = "xml" }));
        Assert.Contains(ServingLogging.FormatKey, ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Every line captured, each parsed as one JSON object (a line that is not fails the test).</summary>
    private static List<JsonElement> Entries(FormatterCapture capture)
    {
        var entries = capture.Text.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement).ToList();
        Assert.NotEmpty(entries);
        Assert.All(entries, e => Assert.Equal(JsonValueKind.Object, e.ValueKind));
        return entries;
    }

    private static readonly Action<ILogger, Exception?> Failed =
        LoggerMessage.Define(LogLevel.Error, new EventId(9001, "TestFailure"), "A failure\nover two lines");

    /// <summary>A logger provider writing through a console formatter into a buffer, with the factory's scopes.</summary>
    private sealed class FormatterCapture(ConsoleFormatter formatter) : ILoggerProvider, ISupportExternalScope
    {
        private readonly StringBuilder _text = new();
        private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

        public string Text
        {
            get
            {
                lock (_text)
                {
                    return _text.ToString();
                }
            }
        }

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

        public void Dispose()
        {
        }

        private sealed class Logger(FormatterCapture owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => owner._scopes.Push(state);

            public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                using var writer = new StringWriter();
                owner.Write(new LogEntry<TState>(logLevel, category, eventId, state, exception, formatter), writer);
                lock (owner._text)
                {
                    owner._text.Append(writer);
                }
            }
        }

        private void Write<TState>(in LogEntry<TState> entry, StringWriter writer) => formatter.Write(entry, _scopes, writer);
    }
}
