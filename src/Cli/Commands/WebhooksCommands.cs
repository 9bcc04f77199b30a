using System.CommandLine;
using System.Globalization;
using Async.Serving.Cli.Output;
using Async.Serving.Client;

namespace Async.Serving.Cli.Commands;

/// <summary><c>webhooks secret|deliveries|redeliver|enable|test</c>.</summary>
internal static class WebhooksCommands
{
    public static Command Create(ServingCli cli)
    {
        var rotate = new Option<bool>("--rotate") { Description = "Make a new secret; the old one keeps signing next to it for a while (24 h by default)." };
        var secret = new Command("secret", "The whsec_… secret that signs the tenant's webhooks.") { rotate };
        secret.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            if (scope.Parse.GetValue(rotate))
            {
                var rotated = await scope.Client.RotateWebhookSecretWithOverlapAsync(cancellationToken).ConfigureAwait(false);
                Write(scope.Output, rotated, [("secret", rotated.Secret),
                    ("previous secret signs until", rotated.PreviousSecretExpiresAt.UtcDateTime.ToString("u", CultureInfo.InvariantCulture))]);
            }
            else
            {
                var value = await scope.Client.GetWebhookSecretAsync(cancellationToken).ConfigureAwait(false);
                Write(scope.Output, new { Secret = value }, [("secret", value)]);
            }

            return ExitCodes.Ok;
        }));

        var job = new Option<string?>("--job") { Description = "Only deliveries of this job." };
        var status = new Option<string?>("--status", "-s") { Description = "Only attempts with this outcome." };
        status.AcceptOnlyFromAmong("delivered", "retrying", "failed", "skipped", "disabled");
        var limit = new Option<int>("--limit", "-n") { Description = "At most this many attempts, newest first.", DefaultValueFactory = _ => 20 };
        var deliveries = new Command("deliveries", "Webhook delivery attempts, newest first.") { job, status, limit };
        deliveries.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var max = scope.Parse.GetValue(limit);
            var found = new List<Delivery>();
            string? cursor = null;
            do
            {
                var page = await scope.Client.ListDeliveriesAsync(
                    new DeliveryQuery(scope.Parse.GetValue(job), scope.Parse.GetValue(status), Math.Clamp(max - found.Count, 1, 100), cursor), cancellationToken)
                    .ConfigureAwait(false);
                found.AddRange(page.Data);
                cursor = page.NextCursor;
            }
            while (cursor is not null && found.Count < max);

            if (scope.Output.Json)
            {
                scope.Output.WriteJson(new { Data = found });
            }
            else
            {
                Tables.WriteDeliveries(scope.Output.Console, found);
            }

            return ExitCodes.Ok;
        }));

        var deliveryId = new Argument<string>("delivery-id") { Description = "A delivery's id (serving webhooks deliveries)." };
        var redeliver = new Command("redeliver", "Send a recorded delivery's message again (same webhook id and body).") { deliveryId };
        redeliver.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var taken = await scope.Client.RedeliverAsync(scope.Parse.GetRequiredValue(deliveryId), cancellationToken).ConfigureAwait(false);
            Write(scope.Output, taken, [("redelivery of", taken.RedeliveryOf), ("message", taken.MessageId), ("event", taken.EventType),
                ("job", taken.JobId), ("url", taken.Url), ("hangfire job", taken.HangfireJob)]);
            return ExitCodes.Ok;
        }));

        var enableUrl = Url();
        var enable = new Command("enable", "Deliver to a URL again after its receiver answered 410 Gone and it was disabled.") { enableUrl };
        enable.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var enabled = await scope.Client.EnableWebhookEndpointAsync(scope.Parse.GetRequiredValue(enableUrl), cancellationToken).ConfigureAwait(false);
            Write(scope.Output, enabled, [("url", enabled.Url), ("was disabled", enabled.WasDisabled ? "yes" : "no")]);
            return ExitCodes.Ok;
        }));

        var testUrl = Url();
        var test = new Command("test", "Send a signed webhook.test event to a URL; its outcome shows in 'serving webhooks deliveries'.") { testUrl };
        test.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var sent = await scope.Client.SendTestWebhookAsync(scope.Parse.GetRequiredValue(testUrl), cancellationToken).ConfigureAwait(false);
            Write(scope.Output, sent, [("message", sent.MessageId), ("url", sent.Url), ("hangfire job", sent.HangfireJob)]);
            return ExitCodes.Ok;
        }));

        return new Command("webhooks", "The tenant's webhook secret and deliveries.") { secret, deliveries, redeliver, enable, test };
    }

    private static Argument<Uri> Url() => new("url")
    {
        Description = "An absolute http or https URL.",
        CustomParser = r => Uri.TryCreate(r.Tokens.Single().Value, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttp || u.Scheme == Uri.UriSchemeHttps)
            ? u
            : Fail(r),
    };

    private static Uri Fail(System.CommandLine.Parsing.ArgumentResult result)
    {
        result.AddError($"'{result.Tokens.Single().Value}' is not an absolute http or https URL.");
        return null!;
    }

    private static void Write<T>(CliOutput output, T value, IEnumerable<(string, string?)> fields)
    {
        if (output.Json)
        {
            output.WriteJson(value);
        }
        else
        {
            Tables.WriteFields(output.Console, fields);
        }
    }
}
