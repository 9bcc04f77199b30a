using System.Net;
using System.Text;
using Async.Serving.Cli;
using Async.Serving.Client;
using Spectre.Console;

namespace Async.Serving.UnitTests;

/// <summary><c>serving watch</c> when its output is not a terminal: a line per step of the job, then the job.</summary>
public sealed class CliWatchTests
{
    private static string Job(string status, double progress) =>
        $$"""{"id":"job1","status":"{{status}}","pipeline":"video.analyze","model":"video@1","created_at":"2026-01-01T00:00:00Z","progress":{{progress.ToString(System.Globalization.CultureInfo.InvariantCulture)}},"attempts":1}""";

    [Fact]
    public async Task Without_a_terminal_each_status_and_each_tenth_of_progress_gets_one_line_then_the_job()
    {
        (string Status, double Progress)[] steps =
        [
            ("queued", 0), ("running", 0), ("running", 0.05), ("running", 0.12), ("running", 0.13), ("running", 0.5),
            ("running", 0.5), ("running", 0.99), ("succeeded", 1),
        ];
        var events = new StringBuilder();
        for (var i = 0; i < steps.Length; i++)
        {
            var type = i == steps.Length - 1 ? "completed" : "progress";
            events.Append(System.Globalization.CultureInfo.InvariantCulture, $"event: {type}\ndata: {Job(steps[i].Status, steps[i].Progress)}\nid: 1.{i}\n\n");
        }

        var handler = new Answers(events.ToString(), Job("succeeded", 1));
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            Interactive = InteractionSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(output),
        });
        var error = new StringWriter();
        var cli = new ServingCli(console, error, _ => new ServingClient(new HttpClient(handler) { BaseAddress = new Uri("http://api.test/") }),
            name => name == "SERVING_URL" ? "http://api.test" : name == "SERVING_API_KEY" ? "sk_test_stub" : null, Path.GetTempPath());

        var code = await cli.RunAsync(["watch", "job1"], CancellationToken.None);

        Assert.True(code == 0, error.ToString());
        var lines = output.ToString().Split(Environment.NewLine);
        Assert.Equal(["job1 queued 0%", "job1 running 0%", "job1 running 10%", "job1 running 50%", "job1 running 90%", "job1 succeeded 100%"], lines.Take(6));
        Assert.Contains(lines.Skip(6), l => l.Contains("succeeded", StringComparison.Ordinal) && l.Contains("status", StringComparison.Ordinal));
        Assert.Equal(["/v1/jobs/job1/events", "/v1/jobs/job1"], handler.Paths);
    }

    /// <summary>The event stream for <c>…/events</c>, the job for anything else.</summary>
    private sealed class Answers(string events, string job) : HttpMessageHandler
    {
        public List<string> Paths { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var path = request.RequestUri!.AbsolutePath;
            Paths.Add(path);
            var (body, type) = path.EndsWith("/events", StringComparison.Ordinal) ? (events, "text/event-stream") : (job, "application/json");
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body, Encoding.UTF8, type) });
        }
    }
}
