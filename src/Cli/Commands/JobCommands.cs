using System.CommandLine;
using System.Globalization;
using Async.Serving.Cli.Output;
using Async.Serving.Client;
using Spectre.Console;

namespace Async.Serving.Cli.Commands;

/// <summary><c>get</c>, <c>wait</c>, <c>watch</c>, <c>cancel</c> and <c>jobs</c>: thin over the client.</summary>
internal static class JobCommands
{
    public static Command Get(ServingCli cli)
    {
        var id = JobId();
        var command = new Command("get", "Show a job: status, times and, once it succeeded, its output (all of it with --json).") { id };
        command.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var job = await scope.Client.GetAsync(scope.Parse.GetRequiredValue(id), cancellationToken).ConfigureAwait(false);
            Write(scope.Output, job);
            return ExitCodes.Ok;
        }));
        return command;
    }

    public static Command Wait(ServingCli cli)
    {
        var id = JobId();
        var timeout = new Option<int?>("--timeout") { Description = "Give up after this many seconds (default: wait until the job ends)." };
        var command = new Command("wait", "Wait until a job ends (long-poll) and show it; exit code 0 only when it succeeded.") { id, timeout };
        command.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var limit = scope.Parse.GetValue(timeout) is { } s ? TimeSpan.FromSeconds(s) : (TimeSpan?)null;
            var job = await scope.Client.WaitAsync(scope.Parse.GetRequiredValue(id), limit, cancellationToken).ConfigureAwait(false);
            Write(scope.Output, job);
            return ExitCodeOf(job);
        }));
        return command;
    }

    public static Command Watch(ServingCli cli)
    {
        var id = JobId();
        var command = new Command("watch", "Follow a job live (server-sent events) with a progress bar until it ends (a line per status or tenth of progress when the output is not a terminal); --json writes one event per line.") { id };
        command.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var jobId = scope.Parse.GetRequiredValue(id);
            if (scope.Output.Json)
            {
                await foreach (var e in scope.Client.EventsAsync(jobId, cancellationToken: cancellationToken).ConfigureAwait(false))
                {
                    scope.Output.WriteJsonLine(e);
                }

                return ExitCodeOf(await scope.Client.GetAsync(jobId, cancellationToken).ConfigureAwait(false));
            }

            await (scope.Output.Bars
                ? BarAsync(scope.Client, scope.Output.Console, jobId, cancellationToken)
                : WatchLinesAsync(scope.Client, scope.Output.Out, jobId, cancellationToken)).ConfigureAwait(false);
            var job = await scope.Client.GetAsync(jobId, cancellationToken).ConfigureAwait(false);
            Tables.WriteJob(scope.Output.Console, job);
            return ExitCodeOf(job);
        }));
        return command;
    }

    /// <summary>On a terminal: one live bar, its status in its description.</summary>
    private static Task BarAsync(ServingClient client, IAnsiConsole console, string jobId, CancellationToken cancellationToken) =>
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                var bar = ctx.AddTask(Markup.Escape(jobId), maxValue: 100);
                await foreach (var e in client.EventsAsync(jobId, cancellationToken: cancellationToken).ConfigureAwait(false))
                {
                    bar.Value = Math.Clamp(e.Job.Progress, 0, 1) * 100;
                    bar.Description = $"{Markup.Escape(jobId)} {Tables.Status(e.Job.Status)}";
                }

                bar.StopTask();
            });

    /// <summary>
    /// Without a terminal: a line whenever the job's status changes or its progress passes another
    /// tenth (<c>job_… running 40%</c>), so a log shows every step however fast the job ends.
    /// </summary>
    private static async Task WatchLinesAsync(ServingClient client, TextWriter output, string jobId, CancellationToken cancellationToken)
    {
        var (status, tenth) = ((string?)null, -1);
        await foreach (var e in client.EventsAsync(jobId, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            var now = (int)Math.Floor(Math.Clamp(e.Job.Progress, 0, 1) * 10);
            if (e.Job.Status == status && now == tenth)
            {
                continue;
            }

            (status, tenth) = (e.Job.Status, now);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{jobId} {status} {now * 10}%"));
            output.Flush();
        }
    }

    public static Command Cancel(ServingCli cli)
    {
        var id = JobId();
        var command = new Command("cancel", "Cancel a job: a queued one never runs, a running one is stopped (409 conflict when it has already ended).") { id };
        command.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var job = await scope.Client.CancelAsync(scope.Parse.GetRequiredValue(id), cancellationToken).ConfigureAwait(false);
            Write(scope.Output, job);
            return ExitCodes.Ok;
        }));
        return command;
    }

    public static Command List(ServingCli cli)
    {
        var status = new Option<string?>("--status", "-s") { Description = "Only jobs in this status." };
        status.AcceptOnlyFromAmong(JobStatuses.Queued, JobStatuses.Running, JobStatuses.Succeeded, JobStatuses.Failed, JobStatuses.Cancelled, JobStatuses.Expired);
        var pipeline = new Option<string?>("--pipeline", "-p") { Description = "Only jobs of this pipeline." };
        var limit = new Option<int>("--limit", "-n") { Description = "At most this many jobs, newest first.", DefaultValueFactory = _ => 20 };
        limit.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1)
            {
                r.AddError("--limit must be at least 1.");
            }
        });
        var command = new Command("jobs", "List the tenant's jobs, newest first (without outputs).") { status, pipeline, limit };
        command.SetAction(cli.Action(async (scope, cancellationToken) =>
        {
            var max = scope.Parse.GetValue(limit);
            var query = new JobQuery(scope.Parse.GetValue(status), scope.Parse.GetValue(pipeline), Math.Min(max, 100));
            var jobs = new List<Job>();
            await foreach (var job in scope.Client.ListAllAsync(query, cancellationToken).ConfigureAwait(false))
            {
                jobs.Add(job);
                if (jobs.Count == max)
                {
                    break;
                }
            }

            if (scope.Output.Json)
            {
                scope.Output.WriteJson(new { Data = jobs });
            }
            else
            {
                Tables.WriteJobs(scope.Output.Console, jobs);
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Argument<string> JobId() => new("id") { Description = "The job's id." };

    private static void Write(CliOutput output, Job job)
    {
        if (output.Json)
        {
            output.WriteJson(job);
        }
        else
        {
            Tables.WriteJob(output.Console, job);
        }
    }

    private static int ExitCodeOf(Job job) => job.Status == JobStatuses.Succeeded ? ExitCodes.Ok : ExitCodes.JobFailed;
}
