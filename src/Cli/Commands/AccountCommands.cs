using System.CommandLine;
using System.Globalization;
using Async.Serving.Cli.Output;

namespace Async.Serving.Cli.Commands;

/// <summary><c>models</c> and <c>usage</c>.</summary>
internal static class AccountCommands
{
    public static Command Models(ServingCli cli)
    {
        var command = new Command("models", "The models the API serves: pipeline, versions, batching, live workers and their execution providers.");
        command.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var models = await scope.Client.ListModelsAsync(cancellationToken).ConfigureAwait(false);
            if (scope.Output.Json)
            {
                scope.Output.WriteJson(new { Data = models });
            }
            else
            {
                Tables.WriteModels(scope.Output.Console, models);
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    public static Command Usage(ServingCli cli)
    {
        var from = new Option<string?>("--from") { Description = "Start of the period, an ISO 8601 instant or date (default: 30 days before --to)." };
        var to = new Option<string?>("--to") { Description = "End of the period, exclusive (default: now)." };
        var model = new Option<string?>("--model") { Description = "Only this model's versions (a name), or one version (name@version): compare a canary with its base." };
        var command = new Command("usage", "The tenant's jobs and compute time per pipeline and model version, with failure rate and execution percentiles, from the job ledger.")
        {
            from, to, model,
        };
        command.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var usage = await scope.Client.GetUsageAsync(Instant(scope.Parse.GetValue(from), "--from"), Instant(scope.Parse.GetValue(to), "--to"), scope.Parse.GetValue(model),
                cancellationToken).ConfigureAwait(false);
            if (scope.Output.Json)
            {
                scope.Output.WriteJson(usage);
            }
            else
            {
                Tables.WriteUsage(scope.Output.Console, usage);
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    internal static DateTimeOffset? Instant(string? text, string option) =>
        text is null ? null
        : DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var value) ? value
        : throw new CliUsageException($"{option} '{text}' is not a date or an ISO 8601 instant (for example 2026-01-31 or 2026-01-31T12:00:00Z).");
}
