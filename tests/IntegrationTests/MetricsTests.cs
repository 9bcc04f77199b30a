using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The API and a worker as real processes (each with its own metrics registry, as deployed): the
/// API serves <c>/metrics</c> on its management port only; after jobs ran, both scrapes pass
/// <c>promtool check metrics</c> (Debian <c>prometheus</c>) without a warning, carry the per-model
/// series, and hold every metric that the alert rules and the Grafana dashboard (compose/monitoring) name.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed partial class MetricsTests : IDisposable
{
    private static string Monitoring => Path.Combine(ServingFixture.RepoRoot, "compose", "monitoring");

    private readonly PrivateModels _models = new();
    private readonly List<Process> _processes = [];

    public void Dispose()
    {
        foreach (var process in _processes)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(10_000);
            }

            process.Dispose();
        }

        _models.Dispose();
    }

    [Fact]
    public async Task The_management_port_and_the_worker_serve_metrics_that_promtool_accepts_and_the_rules_and_dashboard_use()
    {
        var (apiPort, managementPort, workerPort) = (ScriptRunner.FreePort(), ScriptRunner.FreePort(), ScriptRunner.FreePort());
        var key = "sk_metrics_" + Guid.NewGuid().ToString("N");
        Start("Worker", new()
        {
            ["Serving__Worker__MetricsPort"] = workerPort.ToString(CultureInfo.InvariantCulture),
            ["Serving__Worker__IntraOpThreads"] = "1",
        });
        Start("Api", new()
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{apiPort}",
            ["Serving__Management__Port"] = managementPort.ToString(CultureInfo.InvariantCulture),
            ["Serving__Auth__DevelopmentKey"] = key,
            ["Serving__Auth__DevelopmentTenant"] = "metrics-" + Guid.NewGuid().ToString("N")[..8],
            ["Serving__Hangfire__DashboardPassword"] = Guid.NewGuid().ToString("N"),
            ["Serving__Hangfire__RunServer"] = "false",
            ["Serving__Hangfire__SchemaName"] = "hangfire_tests",
            ["Serving__Webhooks__RunRelay"] = "false",
        });
        using var api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{apiPort}") };
        api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}") };
        using var worker = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{workerPort}") };
        await WaitUntilOkAsync(api, "/readyz");
        await WaitUntilOkAsync(worker, "/readyz");

        // /metrics on the management port only, whatever Host the request names; nothing else there.
        Assert.Equal(HttpStatusCode.NotFound, (await api.GetAsync("/metrics")).StatusCode);
        using (var spoofed = new HttpRequestMessage(HttpMethod.Get, "/metrics"))
        {
            spoofed.Headers.Host = $"127.0.0.1:{managementPort}";
            Assert.Equal(HttpStatusCode.NotFound, (await api.SendAsync(spoofed)).StatusCode);
        }

        Assert.Equal(HttpStatusCode.NotFound, (await management.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await management.GetAsync("/readyz")).StatusCode);

        // Jobs through both processes, so the labelled series and histograms have samples.
        // Three distinct images: the result cache (on by default) would answer repeats without the worker.
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var image = Convert.ToBase64String(TestImages.Scene(7 + i, 96, 96));
            var response = await api.PostAsJsonAsync("/v1/jobs", new { pipeline = "image.embed", model = _models.Name, input = new { base64 = image } });
            await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
            ids.Add((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!);
        }

        foreach (var id in ids)
        {
            Assert.Equal("succeeded", (await ServingFixture.WaitForTerminalAsync(api, id)).GetProperty("status").GetString());
        }

        var model = $"{_models.Name}@1";
        var apiText = await management.GetStringAsync("/metrics");
        var workerText = await worker.GetStringAsync("/metrics");
        foreach (var (name, text) in new[] { ("API", apiText), ("worker", workerText) })
        {
            var lint = await PromtoolAsync(["check", "metrics"], text);
            Assert.True(lint.ExitCode == 0 && lint.Output.Length == 0, $"promtool check metrics on the {name}'s /metrics: exit {lint.ExitCode}\n{lint.Output}");
            Assert.DoesNotContain("msquic", text, StringComparison.OrdinalIgnoreCase);          // the .NET Meter / EventCounter bridges are off
            Assert.DoesNotContain("masstransit", text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("_milliseconds", text, StringComparison.Ordinal);
            // The runtime's thread pool, exported on its own (ServingMetrics.AddRuntimeMetrics): it has run work by now.
            foreach (var runtime in (string[])["dotnet_threadpool_completed_items_total", "dotnet_threadpool_threads"])
            {
                var sample = Regex.Match(text, $"^{runtime} (?<value>\\S+)$", RegexOptions.Multiline);
                Assert.True(sample.Success && double.Parse(sample.Groups["value"].Value, CultureInfo.InvariantCulture) > 0, $"{runtime} on the {name}'s /metrics: {sample.Value}");
            }

            var paused = Regex.Match(text, "^dotnet_gc_pause_seconds_total (?<value>\\S+)$", RegexOptions.Multiline);
            Assert.True(paused.Success && double.Parse(paused.Groups["value"].Value, CultureInfo.InvariantCulture) >= 0, $"dotnet_gc_pause_seconds_total on the {name}'s /metrics: {paused.Value}");
        }

        Assert.Contains($"serving_queue_depth{{pipeline=\"image.embed\",model=\"{model}\"}} 0", apiText, StringComparison.Ordinal);
        Assert.Contains($"serving_queue_oldest_age_seconds{{pipeline=\"image.embed\",model=\"{model}\"}} 0", apiText, StringComparison.Ordinal);
        Assert.Contains($"serving_model_workers{{pipeline=\"image.embed\",model=\"{model}\"}} 1", apiText, StringComparison.Ordinal);
        Assert.Contains($"serving_api_jobs_submitted_total{{pipeline=\"image.embed\",model=\"{model}\"}} 3", apiText, StringComparison.Ordinal);
        // Each submit waited for the broker's confirm of the message carrying its job, once.
        Assert.Contains($"serving_api_job_send_seconds_count{{model=\"{model}\"}} 3", apiText, StringComparison.Ordinal);
        Assert.Contains("serving_webhook_deliveries_total{outcome=\"delivered\"}", apiText, StringComparison.Ordinal);
        Assert.Contains($"serving_worker_jobs_total{{pipeline=\"image.embed\",model=\"{model}\",status=\"succeeded\"}} 3", workerText, StringComparison.Ordinal);
        Assert.Contains($"serving_job_queue_seconds_count{{pipeline=\"image.embed\",model=\"{model}\"}} 3", workerText, StringComparison.Ordinal);
        Assert.Contains($"serving_job_execution_seconds_count{{pipeline=\"image.embed\",model=\"{model}\"}} 3", workerText, StringComparison.Ordinal);
        Assert.Contains($"serving_jobs_in_flight{{pipeline=\"image.embed\",model=\"{model}\"}} 0", workerText, StringComparison.Ordinal);
        Assert.Matches($"serving_batch_size_count{{model=\"{Regex.Escape(model)}\"}} [1-3]\\n", workerText);

        // Every metric the alert rules and the dashboard query is served by the API or the worker.
        var served = SampleNames(apiText).Union(SampleNames(workerText)).ToHashSet(StringComparer.Ordinal);
        var used = RuleExpressions().Concat(DashboardExpressions()).SelectMany(MetricNames).ToHashSet(StringComparer.Ordinal);
        Assert.Contains("serving_queue_oldest_age_seconds", used);
        Assert.Contains("serving_webhook_deliveries_total", used);
        Assert.All(used, name => Assert.True(served.Contains(name), $"{name} is used by compose/monitoring but served by neither the API nor the worker"));
    }

    [Fact]
    public async Task The_alert_rules_pass_promtool_and_the_dashboard_is_a_Grafana_dashboard_with_panels()
    {
        var check = await PromtoolAsync(["check", "rules", Path.Combine(Monitoring, "alerts.yml")], null);
        Assert.True(check.ExitCode == 0, check.Output);
        Assert.Contains("SUCCESS", check.Output, StringComparison.Ordinal);
        var config = await PromtoolAsync(["check", "config", Path.Combine(Monitoring, "prometheus.yml")], null);
        Assert.True(config.ExitCode == 0, config.Output);

        var alerts = ((YamlSequenceNode)Yaml(Path.Combine(Monitoring, "alerts.yml"))["groups"]).Cast<YamlMappingNode>()
            .SelectMany(g => ((YamlSequenceNode)g["rules"]).Cast<YamlMappingNode>()).Select(r => ((YamlScalarNode)r["alert"]).Value!).ToList();
        Assert.Equal(["ServingWorkerDown", "ServingBacklogAge", "ServingQueueNotDraining", "ServingStuckJobs", "ServingWebhookFailureRate", "ServingModelUnavailable"], alerts);

        using var dashboard = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(Monitoring, "grafana-dashboard.json")));
        var panels = dashboard.RootElement.GetProperty("panels").EnumerateArray().Where(p => p.GetProperty("type").GetString() != "row").ToList();
        Assert.True(panels.Count >= 10, $"{panels.Count} panels");
        Assert.All(panels, p => Assert.Contains(p.GetProperty("targets").EnumerateArray(), t => !string.IsNullOrWhiteSpace(t.GetProperty("expr").GetString())));
        Assert.Equal(panels.Count, panels.Select(p => p.GetProperty("id").GetInt32()).Distinct().Count());
    }

    private void Start(string project, Dictionary<string, string> environment)
    {
        var bin = Path.GetDirectoryName(typeof(ServingFixture).Assembly.Location)!;
        var configuration = bin.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        var dir = Path.Combine(ServingFixture.RepoRoot, "src", project, "bin", configuration, "net10.0");
        var start = new ProcessStartInfo("dotnet", [Path.Combine(dir, $"Async.Serving.{project}.dll")])
        {
            WorkingDirectory = dir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DOTNET_ENVIRONMENT"] = "Testing";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Testing";
        start.Environment["Serving__Models__Path"] = _models.Path;
        foreach (var (k, v) in environment)
        {
            start.Environment[k] = v;
        }

        var process = Process.Start(start)!;
        _processes.Add(process);
        _ = process.StandardOutput.ReadToEndAsync(); // never blocks on a full pipe
        _ = process.StandardError.ReadToEndAsync();
    }

    private async Task WaitUntilOkAsync(HttpClient client, string path)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        while (true)
        {
            Assert.All(_processes, p => Assert.False(p.HasExited, $"a process exited with {(p.HasExited ? p.ExitCode : 0)}"));
            Assert.True(DateTime.UtcNow < deadline, $"{client.BaseAddress}{path} not ready in time");
            try
            {
                if ((await client.GetAsync(path)).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }

            await Task.Delay(200);
        }
    }

    /// <summary>Runs promtool with <paramref name="input"/> on stdin; stdout and stderr together.</summary>
    private static async Task<(int ExitCode, string Output)> PromtoolAsync(string[] arguments, string? input)
    {
        var start = new ProcessStartInfo("promtool", arguments)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            await process.StandardInput.WriteAsync(input);
        }

        process.StandardInput.Close();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return (process.ExitCode, ((await output) + (await error)).Trim());
    }

    private static YamlMappingNode Yaml(string path)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(path)));
        return (YamlMappingNode)stream.Documents.Single().RootNode;
    }

    private static IEnumerable<string> RuleExpressions() =>
        ((YamlSequenceNode)Yaml(Path.Combine(Monitoring, "alerts.yml"))["groups"]).Cast<YamlMappingNode>()
            .SelectMany(g => ((YamlSequenceNode)g["rules"]).Cast<YamlMappingNode>())
            .Select(r => ((YamlScalarNode)r["expr"]).Value!);

    private static IEnumerable<string> DashboardExpressions()
    {
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Path.Combine(Monitoring, "grafana-dashboard.json")));
        return [.. dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .Where(p => p.TryGetProperty("targets", out _))
            .SelectMany(p => p.GetProperty("targets").EnumerateArray())
            .Select(t => t.GetProperty("expr").GetString()!)];
    }

    /// <summary>The names of the samples in a Prometheus text exposition (histograms as their _bucket, _sum and _count series).</summary>
    private static IEnumerable<string> SampleNames(string exposition) =>
        exposition.Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => SampleName().Match(l).Value);

    /// <summary>
    /// The metric names in a PromQL expression: what is left once label matchers, range selectors,
    /// grouping clauses and strings are removed, less function names (followed by a parenthesis) and keywords.
    /// </summary>
    private static IEnumerable<string> MetricNames(string expression)
    {
        var bare = Grouping().Replace(Braces().Replace(Brackets().Replace(Strings().Replace(expression, ""), ""), ""), "");
        return Identifier().Matches(bare).Where(m => !m.Groups[2].Success).Select(m => m.Groups[1].Value)
            .Where(n => n is not ("and" or "or" or "unless" or "bool" or "offset" or "on" or "ignoring" or "group_left" or "group_right" or "by" or "without" or "le" or "inf" or "nan"));
    }

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*")]
    private static partial Regex SampleName();

    [GeneratedRegex("\"[^\"]*\"")]
    private static partial Regex Strings();

    [GeneratedRegex(@"\[[^\]]*\]")]
    private static partial Regex Brackets();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex Braces();

    [GeneratedRegex(@"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")]
    private static partial Regex Grouping();

    [GeneratedRegex(@"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")]
    private static partial Regex Identifier();
}
