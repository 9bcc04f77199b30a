using System.CommandLine;
using System.Globalization;
using Async.Serving.Cli.Batches;
using Async.Serving.Cli.Output;
using Async.Serving.Client;

namespace Async.Serving.Cli.Commands;

/// <summary><c>batch submit|get|results|cancel</c>: many jobs in one JSONL file (<c>/v1/batches</c>).</summary>
internal static class BatchCommands
{
    public static Command Create(ServingCli cli)
    {
        var file = new Argument<string>("file") { Description = "A JSONL file: one job per line, each with a custom_id." };
        var webhook = new Option<Uri?>("--webhook") { Description = "Where batch.completed is delivered once every line has ended." };
        var priority = PriorityOption.Create("The priority of every line that names none: low, normal or high (default: the tenant's default).");
        var key = IdempotencyKeyOption.Create(
            "The upload's Idempotency-Key: the same command run again with the same key gives back the batch the first run made, not a second one (default: a new key per run).");
        var submit = new Command("submit", "Upload a JSONL file as a batch; its lines become jobs after the answer.") { file, webhook, priority, key };
        submit.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var opened = File.OpenRead(Path.GetFullPath(scope.Parse.GetRequiredValue(file), scope.CurrentDirectory));
            await using (opened.ConfigureAwait(false))
            {
                var stream = scope.Parse.GetValue(priority) is { } p ? BatchLinePriority.Apply(opened, p, cancellationToken) : opened;
                await using var disposeLines = stream.ConfigureAwait(false);
                // With --priority the upload is a stream that cannot seek, so the client does not retry it;
                // a rerun with the same key sends the same rewritten bytes, and so the same fingerprint.
                var options = new BatchSubmitOptions { WebhookUrl = scope.Parse.GetValue(webhook), IdempotencyKey = scope.Parse.GetValue(key) };
                var batch = await scope.Client.SubmitBatchAsync(stream, options, cancellationToken).ConfigureAwait(false);
                Write(scope.Output, batch);
            }

            return ExitCodes.Ok;
        }));

        var getId = Id();
        var get = new Command("get", "A batch's status and its lines counted by status.") { getId };
        get.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            Write(scope.Output, await scope.Client.GetBatchAsync(scope.Parse.GetRequiredValue(getId), cancellationToken).ConfigureAwait(false));
            return ExitCodes.Ok;
        }));

        var resultsId = Id();
        var results = new Command("results", "The batch's results as JSONL on standard output, one line per input line in input order.") { resultsId };
        results.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            await foreach (var result in scope.Client.GetBatchResultsAsync(scope.Parse.GetRequiredValue(resultsId), cancellationToken).ConfigureAwait(false))
            {
                scope.Output.WriteJsonLine(result);
            }

            return ExitCodes.Ok;
        }));

        var cancelId = Id();
        var cancel = new Command("cancel", "Cancel a batch: no more lines become jobs; its queued and running jobs are cancelled.") { cancelId };
        cancel.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            Write(scope.Output, await scope.Client.CancelBatchAsync(scope.Parse.GetRequiredValue(cancelId), cancellationToken).ConfigureAwait(false));
            return ExitCodes.Ok;
        }));

        return new Command("batch", "Batches: many jobs in one JSONL file.") { submit, get, results, cancel };
    }

    private static Argument<string> Id() => new("batch-id") { Description = "A batch's id (batch_…)." };

    private static void Write(CliOutput output, Batch batch)
    {
        if (output.Json)
        {
            output.WriteJson(batch);
            return;
        }

        var c = batch.Counts;
        Tables.WriteFields(output.Console, [
            ("batch", batch.Id),
            ("status", batch.Status),
            ("lines", batch.Total.ToString(CultureInfo.InvariantCulture)),
            ("progress", batch.Progress.ToString("P0", CultureInfo.InvariantCulture)),
            ("pending / queued / running", $"{c.Pending} / {c.Queued} / {c.Running}"),
            ("succeeded / failed / cancelled / expired", $"{c.Succeeded} / {c.Failed} / {c.Cancelled} / {c.Expired}"),
            ("errored (never a job)", c.Errored.ToString(CultureInfo.InvariantCulture)),
            ("created", batch.CreatedAt.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)),
            ("ended", batch.CompletedAt?.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)),
        ]);
    }
}
