using System.CommandLine;
using System.Globalization;
using Async.Serving.Cli.Output;

namespace Async.Serving.Cli.Commands;

/// <summary><c>keys list|create|revoke</c>: the tenant's API keys (needs an admin key).</summary>
internal static class KeysCommands
{
    public static Command Create(ServingCli cli)
    {
        var list = new Command("list", "The tenant's keys, newest first, revoked and expired ones included; never a secret.");
        list.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var keys = await scope.Client.ListKeysAsync(cancellationToken).ConfigureAwait(false);
            if (scope.Output.Json)
            {
                scope.Output.WriteJson(new { Data = keys });
            }
            else
            {
                Tables.WriteKeys(scope.Output.Console, keys);
            }

            return ExitCodes.Ok;
        }));

        var name = new Option<string?>("--name") { Description = "A name to tell the key apart." };
        var admin = new Option<bool>("--admin") { Description = "The key may manage keys too." };
        var expires = new Option<int?>("--expires-in-days") { Description = "The key stops working after this many days (default: never)." };
        var create = new Command("create", "Create a key; its secret is shown this once.") { name, admin, expires };
        create.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var key = await scope.Client.CreateKeyAsync(scope.Parse.GetValue(name), scope.Parse.GetValue(admin), scope.Parse.GetValue(expires), cancellationToken)
                .ConfigureAwait(false);
            if (scope.Output.Json)
            {
                scope.Output.WriteJson(key);
            }
            else
            {
                Tables.WriteFields(scope.Output.Console,
                [
                    ("id", key.Id), ("key", key.Key), ("name", key.Name), ("admin", key.Admin ? "yes" : "no"),
                    ("expires", key.ExpiresAt?.UtcDateTime.ToString("u", CultureInfo.InvariantCulture) ?? "never"),
                ]);
                scope.Output.Note("[yellow]The key is shown this once: keep it now.[/]");
            }

            return ExitCodes.Ok;
        }));

        var id = new Argument<string>("id") { Description = "The key's id (serving keys list)." };
        var revoke = new Command("revoke", "Revoke a key at once (409 conflict for the tenant's last admin key).") { id };
        revoke.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var keyId = scope.Parse.GetRequiredValue(id);
            var revoked = await scope.Client.RevokeKeyAsync(keyId, cancellationToken).ConfigureAwait(false);
            if (scope.Output.Json)
            {
                scope.Output.WriteJson(revoked);
            }
            else
            {
                scope.Output.Note($"Key {Spectre.Console.Markup.Escape(keyId)} revoked.");
            }

            return ExitCodes.Ok;
        }));

        return new Command("keys", "The tenant's API keys (an admin key is needed).") { list, create, revoke };
    }
}
