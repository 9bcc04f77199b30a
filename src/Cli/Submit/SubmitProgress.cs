using Spectre.Console;

namespace Async.Serving.Cli.Submit;

/// <summary>One overall bar for the run and a bar per video job; nothing when there is no progress display (<c>--json</c>).</summary>
internal sealed class SubmitProgress(ProgressContext? context, int total)
{
    private readonly ProgressTask? _overall = context?.AddTask($"[bold]{total} file(s)[/]", maxValue: Math.Max(total, 1));

    public static SubmitProgress None { get; } = new(null, 0);

    public void FileDone() => _overall?.Increment(1);

    /// <summary>A bar from 0 to 100 for one job, or null.</summary>
    public ProgressTask? Job(string name) => context?.AddTask(Markup.Escape(name), maxValue: 100);
}
