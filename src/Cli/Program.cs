using Spectre.Console;

namespace Async.Serving.Cli;

/// <summary>
/// The entry point of <c>serving</c> (a named class rather than top-level statements, whose
/// <c>Program</c> would clash with the API's in the integration tests, which see both).
/// </summary>
internal static class ServingTool
{
    private static async Task<int> Main(string[] args)
    {
        // Ctrl-C cancels the command's token; a command then stops cleanly within this time (jobs already
        // submitted stay on the server, and a rerun of `serving submit` resumes through its idempotency keys).
        var console = AnsiConsole.Console;
        if (Console.IsOutputRedirected)
        {
            // Piped to a file or a pager there is no window to fit: 80 columns would wrap every table.
            console.Profile.Width = 160;
        }

        var cli = new ServingCli(console, Console.Error);
        return await cli.RunAsync(args, CancellationToken.None, processTerminationTimeout: TimeSpan.FromSeconds(10)).ConfigureAwait(false);
    }
}
