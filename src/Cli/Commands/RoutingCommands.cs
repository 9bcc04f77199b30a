using System.CommandLine;
using System.Globalization;
using Async.Serving.Cli.Output;
using Async.Serving.Client;

namespace Async.Serving.Cli.Commands;

/// <summary><c>routing show|set|rollback|clear</c>: how a model name's submits split between its versions (needs an admin key).</summary>
internal static class RoutingCommands
{
    public static Command Create(ServingCli cli)
    {
        var model = new Argument<string>("model") { Description = "The model name (without @version)." };
        var show = new Command("show", "Each version's weight and share.") { model };
        show.SetAction(cli.Action(async (scope, cancellationToken) =>
            Write(scope, await scope.Client.GetRoutingAsync(scope.Parse.GetRequiredValue(model), cancellationToken).ConfigureAwait(false))));

        var weights = new Argument<string[]>("weights") { Description = "version=weight pairs, for example 1=90 2=10 (normalised by their sum).", Arity = ArgumentArity.OneOrMore };
        var set = new Command("set", "Set the weights; the next submit of the bare name routes by them.") { model, weights };
        set.SetAction(cli.Action(async (scope, cancellationToken) =>
            Write(scope, await scope.Client.SetRoutingAsync(scope.Parse.GetRequiredValue(model), ParseWeights(scope.Parse.GetRequiredValue(weights)), cancellationToken)
                .ConfigureAwait(false))));

        var version = new Argument<string>("version") { Description = "The version that takes every submit." };
        var rollback = new Command("rollback", "Send every submit of the bare name to one version, from the next submit on.") { model, version };
        rollback.SetAction(cli.Action(async (scope, cancellationToken) =>
            Write(scope, await scope.Client.SetRoutingAsync(scope.Parse.GetRequiredValue(model),
                new Dictionary<string, int> { [scope.Parse.GetRequiredValue(version)] = 100 }, cancellationToken).ConfigureAwait(false))));

        var clear = new Command("clear", "Remove the weights: the bare name goes to its newest version again.") { model };
        clear.SetAction(cli.Action(async (scope, cancellationToken) =>
            Write(scope, await scope.Client.DeleteRoutingAsync(scope.Parse.GetRequiredValue(model), cancellationToken).ConfigureAwait(false))));

        return new Command("routing", "Canary and A/B routing of a model name to its versions (an admin key is needed).") { show, set, rollback, clear };
    }

    internal static Dictionary<string, int> ParseWeights(IEnumerable<string> pairs)
    {
        var weights = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var pair in pairs)
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || !int.TryParse(pair.AsSpan(eq + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var weight))
            {
                throw new CliUsageException($"'{pair}' is not version=weight (for example 2=10).");
            }

            weights[pair[..eq]] = weight;
        }

        return weights;
    }

    private static int Write(CommandScope scope, ModelRouting routing)
    {
        if (scope.Output.Json)
        {
            scope.Output.WriteJson(routing);
        }
        else
        {
            Tables.WriteRouting(scope.Output.Console, routing);
        }

        return ExitCodes.Ok;
    }
}
