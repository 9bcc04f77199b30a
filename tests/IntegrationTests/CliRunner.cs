using System.Net.Http.Headers;
using Async.Serving.Cli;
using Async.Serving.Client;
using Spectre.Console;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// Runs <c>serving</c> in-process against the fixture's API: a console and an error writer that
/// the test reads, the key from the environment the CLI would read, and the in-memory server
/// behind the client (through <paramref name="handler"/> when the test watches the requests).
/// </summary>
public sealed class CliRunner(ServingFixture serving, string workingDirectory, string? apiKey = null, Func<DelegatingHandler>? handler = null)
{
    public sealed record Result(int ExitCode, string Out, string Error);

    /// <summary>A terminal (ANSI and interactive: live progress bars) rather than a pipe or a log.</summary>
    public bool Terminal { get; init; }

    public async Task<Result> RunAsync(CancellationToken cancellationToken, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = Terminal ? AnsiSupport.Yes : AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = Terminal ? InteractionSupport.Yes : InteractionSupport.No,
            // Spectre refreshes progress from its own thread.
            Out = new AnsiConsoleOutput(TextWriter.Synchronized(output)),
        });
        console.Profile.Width = 240;
        var cli = new ServingCli(console, TextWriter.Synchronized(error), Client, Environment, workingDirectory);
        var code = await cli.RunAsync(args, cancellationToken);
        return new Result(code, output.ToString(), error.ToString());
    }

    public Task<Result> RunAsync(params string[] args) => RunAsync(CancellationToken.None, args);

    private string? Environment(string name) => name switch
    {
        "SERVING_URL" => "http://localhost",
        "SERVING_API_KEY" => apiKey ?? serving.ApiKey,
        _ => null,
    };

    /// <summary>The client the CLI would make for this connection, over the test server.</summary>
    private ServingClient Client(Cli.Configuration.ServingConnection connection)
    {
        var http = handler is null ? serving.Api.CreateClient() : serving.Api.CreateDefaultClient(handler());
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", connection.ApiKey);
        return new ServingClient(http);
    }
}
