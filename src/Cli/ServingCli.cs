using System.CommandLine;
using System.CommandLine.Help;
using Async.Serving.Cli.Commands;
using Async.Serving.Cli.Configuration;
using Async.Serving.Cli.Output;
using Async.Serving.Client;
using Spectre.Console;

namespace Async.Serving.Cli;

/// <summary>
/// The <c>serving</c> command tree. Program.cs runs it on the real console; tests run it in-process
/// with a console and an error writer they capture, an environment of their own and a client
/// factory that points at a test server.
/// </summary>
public sealed class ServingCli
{
    private readonly IAnsiConsole _console;
    private readonly TextWriter _error;
    private readonly Func<ServingConnection, ServingClient> _clientFactory;
    private readonly Func<string, string?> _environment;
    private readonly string _currentDirectory;
    private readonly GlobalOptions _globals = new();

    public ServingCli(
        IAnsiConsole console,
        TextWriter error,
        Func<ServingConnection, ServingClient>? clientFactory = null,
        Func<string, string?>? environment = null,
        string? currentDirectory = null)
    {
        _console = console;
        _error = error;
        _clientFactory = clientFactory ?? (c => ServingClient.Create(new ServingClientOptions { BaseAddress = c.BaseAddress, ApiKey = c.ApiKey }));
        _environment = environment ?? Environment.GetEnvironmentVariable;
        _currentDirectory = currentDirectory ?? Directory.GetCurrentDirectory();
        // A plain command named as the tool is installed ('serving'), not RootCommand, which takes the assembly's name.
        Root = new Command("serving", "Async.Serving from the command line: submit files and folders with progress, follow and manage jobs, keys and webhooks.")
        {
            new HelpOption(),
            new VersionOption(),
            _globals.Url,
            _globals.ApiKey,
            _globals.Json,
            SubmitCommand.Create(this),
            JobCommands.Get(this),
            JobCommands.Wait(this),
            JobCommands.Watch(this),
            JobCommands.Cancel(this),
            JobCommands.List(this),
            AccountCommands.Models(this),
            AccountCommands.Usage(this),
            RoutingCommands.Create(this),
            KeysCommands.Create(this),
            WebhooksCommands.Create(this),
        };
    }

    public Command Root { get; }

    public string CurrentDirectory => _currentDirectory;

    /// <summary>
    /// Parses and runs; a parse error is a usage error (exit 2), not System.CommandLine's 1.
    /// <paramref name="processTerminationTimeout"/> is how long Ctrl-C waits for a command to stop
    /// cleanly (null: Ctrl-C is not handled here, as in tests, which cancel the token instead).
    /// </summary>
    public async Task<int> RunAsync(string[] args, CancellationToken cancellationToken, TimeSpan? processTerminationTimeout = null)
    {
        var parse = Root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                _error.WriteLine($"error: {error.Message}");
            }

            _error.WriteLine("Run 'serving --help' (or 'serving <command> --help') for usage.");
            return ExitCodes.Usage;
        }

        var configuration = new InvocationConfiguration
        {
            Output = _console.Profile.Out.Writer,
            Error = _error,
            ProcessTerminationTimeout = processTerminationTimeout,
            EnableDefaultExceptionHandler = false,
        };
        return await parse.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The action of a command that talks to the API: output mode and client from the global
    /// options, every failure turned into a message and an exit code.
    /// </summary>
    internal Func<ParseResult, CancellationToken, Task<int>> Action(Func<CommandScope, CancellationToken, Task<int>> run) =>
        async (parse, cancellationToken) =>
        {
            var output = new CliOutput(_console, _error, parse.GetValue(_globals.Json));
            try
            {
                var connection = ServingConnection.Resolve(parse.GetValue(_globals.Url), parse.GetValue(_globals.ApiKey), _environment, _currentDirectory);
                using var client = _clientFactory(connection);
                return await run(new CommandScope(parse, output, client, _currentDirectory), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                output.WriteError("interrupted");
                return ExitCodes.Interrupted;
            }
            catch (Exception ex) when (ex is CliUsageException or ServingApiException or HttpRequestException or TimeoutException or OperationCanceledException or IOException)
            {
                var error = ErrorReport.Describe(ex);
                if (output.Json)
                {
                    output.WriteJson(new { error });
                }

                output.WriteError(ErrorReport.Format(error));
                return ErrorReport.ExitCode(ex);
            }
        };
}

/// <summary>What a command's action works with.</summary>
internal sealed record CommandScope(ParseResult Parse, CliOutput Output, ServingClient Client, string CurrentDirectory);

/// <summary>Options every command takes.</summary>
internal sealed class GlobalOptions
{
    public Option<string?> Url { get; } = new("--url")
    {
        Description = "The API's base address (default: SERVING_URL, else .serving/env).",
        Recursive = true,
    };

    public Option<string?> ApiKey { get; } = new("--api-key")
    {
        Description = "The API key (default: SERVING_API_KEY, else .serving/env).",
        Recursive = true,
    };

    public Option<bool> Json { get; } = new("--json")
    {
        Description = "Write JSON to stdout for scripts instead of tables and progress bars.",
        Recursive = true,
    };
}
