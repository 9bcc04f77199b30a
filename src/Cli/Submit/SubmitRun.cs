using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Async.Serving.Cli.Output;
using Async.Serving.Client;
using Spectre.Console;

namespace Async.Serving.Cli.Submit;

/// <summary>
/// Runs a plan: up to <c>concurrency</c> files in flight, each hashed, submitted with its derived
/// idempotency key, followed to a terminal state (long-poll for images, SSE progress for videos) and
/// its result written. Ctrl-C stops it at once: submitted jobs stay on the server, and the next
/// run with the same arguments attaches to them through the same keys.
/// </summary>
internal sealed class SubmitRun(ServingClient client, JsonElement? parameters, string? priority, bool retryFailed, string currentDirectory)
{
    /// <summary>With <c>--retry-failed</c>: new attempts after a job that did not succeed.</summary>
    public const int MaxRetries = 2;

    /// <summary>Each answer of a busy key comes after the API waited 15 s; five of them outlast its one-minute takeover.</summary>
    private const int KeyBusyAttempts = 6;

    public async Task<SubmitSummary> RunAsync(IReadOnlyList<SubmitItem> items, int concurrency, SubmitProgress progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(progress);
        var outcomes = new ConcurrentDictionary<SubmitItem, FileOutcome>();
        foreach (var skipped in items.Where(i => i.Skip))
        {
            outcomes[skipped] = Outcome(skipped, OutcomeStatus.Skipped) with { Result = skipped.ResultPath };
        }

        var interrupted = false;
        try
        {
            await Parallel.ForEachAsync(
                items.Where(i => !i.Skip),
                new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken },
                async (item, ct) =>
                {
                    var outcome = await RunOneAsync(item, progress, ct).ConfigureAwait(false);
                    outcomes[item] = outcome;
                    progress.FileDone(outcome);
                }).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            interrupted = true;
        }

        var files = items.Select(i => outcomes.TryGetValue(i, out var o) ? o : Outcome(i, OutcomeStatus.Interrupted)).ToList();
        return new SubmitSummary(files, interrupted);
    }

    private async Task<FileOutcome> RunOneAsync(SubmitItem item, SubmitProgress progress, CancellationToken cancellationToken)
    {
        byte[] hash;
        try
        {
            hash = await SubmitKeys.HashFileAsync(item.Input.FullPath, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Outcome(item, OutcomeStatus.Refused) with { ErrorCode = "file_unreadable", ErrorMessage = ex.Message };
        }

        var key = SubmitKeys.Derive(hash, item.Pipeline, item.Model, parameters, priority);
        Job job;
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                job = await SubmitAsync(item, key, cancellationToken).ConfigureAwait(false);
                job = await FollowAsync(item, job, progress, cancellationToken).ConfigureAwait(false);
            }
            catch (ServingApiException ex) when (!AffectsEveryFile(ex))
            {
                return Outcome(item, OutcomeStatus.Refused) with { ErrorCode = ex.Code, ErrorMessage = ex.Detail ?? ex.Title ?? ex.Message };
            }

            if (job.Status == JobStatuses.Succeeded || !retryFailed || attempt == MaxRetries)
            {
                break;
            }

            key = SubmitKeys.Retry(key, job.Id);
        }

        var outcome = Outcome(item, job.Status) with
        {
            Model = job.Model,
            JobId = job.Id,
            ExecutionMs = job.ExecutionMs,
            ErrorCode = job.Error?.Code,
            ErrorMessage = job.Error?.Message,
        };
        if (job.Status != JobStatuses.Succeeded)
        {
            return outcome;
        }

        await ResultPaths.WriteAsync(item.ResultPath, JsonSerializer.Serialize(job, CliOutput.JsonOptions), cancellationToken).ConfigureAwait(false);
        return outcome with { Result = item.ResultPath };
    }

    /// <summary>
    /// Submits with the file's key. A 409 <c>conflict</c> means another request holds the key: the
    /// interrupted submit of an earlier run that the API has not let go of yet (it takes such a key
    /// over after a minute), so this waits and asks again rather than reporting the file as refused.
    /// </summary>
    private async Task<Job> SubmitAsync(SubmitItem item, string key, CancellationToken cancellationToken)
    {
        var request = new SubmitRequest
        {
            Pipeline = item.Pipeline,
            // Empty: the API picks the pipeline's default model, as when the field is left out.
            Model = item.Model,
            Input = JobInput.FromFile(item.Input.FullPath),
            Params = parameters,
            // Null: the tenant's default, decided by the API (and then no part of the key on either side).
            Priority = priority,
            IdempotencyKey = key,
        };
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await client.SubmitAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (ServingApiException ex) when (ex.Status == (int)HttpStatusCode.Conflict && attempt < KeyBusyAttempts)
            {
                await Task.Delay(ex.RetryAfter ?? TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Until the job is terminal: a video's progress from its event stream, anything else by long-polling.</summary>
    private async Task<Job> FollowAsync(SubmitItem item, Job job, SubmitProgress progress, CancellationToken cancellationToken)
    {
        if (job.IsTerminal)
        {
            return job.Status == JobStatuses.Succeeded && job.Output is null
                ? await client.GetAsync(job.Id, cancellationToken).ConfigureAwait(false)
                : job;
        }

        if (item.Input.Kind == MediaKind.Video && progress.Job(Display(item)) is { } bar)
        {
            try
            {
                await foreach (var e in client.EventsAsync(job.Id, cancellationToken: cancellationToken).ConfigureAwait(false))
                {
                    bar.Value = Math.Clamp(e.Job.Progress, 0, 1) * 100;
                    bar.Description = $"{Markup.Escape(Display(item))} [grey]{e.Job.Status}[/]";
                }
            }
            finally
            {
                bar.StopTask();
            }

            return await client.GetAsync(job.Id, cancellationToken).ConfigureAwait(false) is { IsTerminal: true } done
                ? done
                : await client.WaitAsync(job.Id, cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        return await client.WaitAsync(job.Id, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Problems that no other file would escape (a wrong key, an unknown pipeline): the run stops with exit code 3.</summary>
    private static bool AffectsEveryFile(ServingApiException ex) =>
        ex.Status is (int)HttpStatusCode.Unauthorized or (int)HttpStatusCode.Forbidden
        || ex.Code is "unknown_pipeline" or "unknown_model" or "unauthorized" or "forbidden";

    private FileOutcome Outcome(SubmitItem item, string status) => new()
    {
        File = Display(item),
        Pipeline = item.Pipeline,
        Status = status,
    };

    /// <summary>The file as the run names it: relative to the current directory when under it (<c>photos/cat.jpg</c>), else its full path.</summary>
    private string Display(SubmitItem item) => DisplayPath(currentDirectory, item.Input.FullPath);

    internal static string DisplayPath(string currentDirectory, string fullPath)
    {
        var relative = Path.GetRelativePath(currentDirectory, fullPath);
        var outside = relative == ".." || relative.StartsWith(".." + Path.DirectorySeparatorChar, StringComparison.Ordinal) || Path.IsPathRooted(relative);
        return outside ? fullPath : relative;
    }
}
