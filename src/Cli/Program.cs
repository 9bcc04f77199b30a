using Async.Serving.Cli;
using Spectre.Console;

// Ctrl-C cancels the command's token; a command then stops cleanly within this time (jobs already
// submitted stay on the server, and a rerun of `serving submit` resumes through its idempotency keys).
var cli = new ServingCli(AnsiConsole.Console, Console.Error);
return await cli.RunAsync(args, CancellationToken.None, processTerminationTimeout: TimeSpan.FromSeconds(10)).ConfigureAwait(false);
