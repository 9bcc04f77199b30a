using System.CommandLine;
using Async.Serving.Cli.Output;
using Async.Serving.Cli.Submit;
using Spectre.Console;

namespace Async.Serving.Cli.Commands;

/// <summary><c>serving submit</c>: files, folders or globs, with progress, results as JSON files, resumable.</summary>
internal static class SubmitCommand
{
    public static Command Create(ServingCli cli)
    {
        var inputs = new Argument<string[]>("inputs")
        {
            Description = "Files, folders (every image and video below them) or globs such as 'photos/**/*.jpg'.",
            Arity = ArgumentArity.OneOrMore,
        };
        var pipeline = new Option<string?>("--pipeline", "-p")
        {
            Description = "image.embed, image.ocr or video.analyze (default: image.embed for images, video.analyze for videos).",
        };
        var model = new Option<string?>("--model", "-m") { Description = "A model name or name@version (default: the pipeline's default; needs --pipeline)." };
        var param = new Option<string[]>("--param")
        {
            Description = "A job parameter as key=value (the value is read as JSON when it is JSON); repeat for more.",
            AllowMultipleArgumentsPerToken = false,
        };
        var priority = PriorityOption.Create(
            "The jobs' priority: low, normal or high (default: the tenant's default). Part of each file's key: another priority is another job.");
        var paramsJson = new Option<string?>("--params") { Description = "The job parameters as a JSON object; --param values override its keys." };
        var concurrency = new Option<int>("--concurrency", "-j") { Description = "Jobs in flight at once.", DefaultValueFactory = _ => 8 };
        concurrency.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 1 or > 256)
            {
                r.AddError("--concurrency must be from 1 to 256.");
            }
        });
        var output = new Option<string?>("--out", "-o") { Description = "Write results under this folder (same layout as the inputs) instead of next to them." };
        var force = new Option<bool>("--force") { Description = "Submit files whose result file already exists (default: skip them)." };
        var retryFailed = new Option<bool>("--retry-failed")
        {
            Description = $"Submit a file again when its job failed, was cancelled or expired (up to {SubmitRun.MaxRetries} more times), instead of reporting the earlier job.",
        };

        var command = new Command("submit", "Submit files, folders or globs; follow the jobs with progress bars; write each result as <file>.<pipeline>.json.")
        {
            inputs, pipeline, model, priority, param, paramsJson, concurrency, output, force, retryFailed,
        };
        command.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var parse = scope.Parse;
            var parameters = JobParameters.Parse(parse.GetValue(paramsJson), parse.GetValue(param));
            var files = InputExpander.Expand(parse.GetRequiredValue(inputs), scope.CurrentDirectory);
            var outDir = parse.GetValue(output) is { } o ? Path.GetFullPath(o, scope.CurrentDirectory) : null;
            var plan = SubmitPlan.Build(files, parse.GetValue(pipeline), parse.GetValue(model), outDir, parse.GetValue(force));
            var run = new SubmitRun(scope.Client, parameters, parse.GetValue(priority), parse.GetValue(retryFailed), scope.CurrentDirectory);
            var toRun = plan.Count(i => !i.Skip);

            var console = scope.Output.Console;
            SubmitSummary summary;
            if (scope.Output.Json || toRun == 0)
            {
                summary = await run.RunAsync(plan, parse.GetValue(concurrency), SubmitProgress.None, cancellationToken).ConfigureAwait(false);
            }
            else if (!scope.Output.Bars)
            {
                summary = await run.RunAsync(plan, parse.GetValue(concurrency), SubmitProgress.Lines(console, toRun), cancellationToken).ConfigureAwait(false);
            }
            else
            {
                summary = await console.Progress()
                    .AutoClear(false)
                    .HideCompleted(false)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
                    .StartAsync(ctx => run.RunAsync(plan, parse.GetValue(concurrency), SubmitProgress.Bars(ctx, toRun), cancellationToken))
                    .ConfigureAwait(false);
            }

            if (scope.Output.Json)
            {
                scope.Output.WriteJson(new
                {
                    summary.Total,
                    summary.Succeeded,
                    summary.Failed,
                    summary.Skipped,
                    summary.Unfinished,
                    summary.Interrupted,
                    summary.Files,
                });
            }
            else
            {
                Tables.WriteSummary(scope.Output.Console, summary);
            }

            if (summary.Interrupted)
            {
                scope.Output.WriteError("interrupted: jobs already submitted keep running on the server; run the same command again to resume.");
            }

            return summary.ExitCode;
        }));
        return command;
    }
}
