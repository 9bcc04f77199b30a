using System.Globalization;
using Spectre.Console;

namespace Async.Serving.Cli.Submit;

/// <summary>
/// How a run shows its files while they finish: bars on a terminal (one overall, one per video job),
/// a line per finished file when the output is not a terminal (a pipe, a CI log), nothing with
/// <c>--json</c>. Spectre's own fallback for a non-terminal prints a bar only at percentage
/// milestones and never a bar that finished between two of its one-second refreshes, so a log
/// would miss most short jobs; the lines name every one.
/// </summary>
internal abstract class SubmitProgress
{
    public static SubmitProgress None { get; } = new Silent();

    public static SubmitProgress Bars(ProgressContext context, int total) => new BarProgress(context, total);

    public static SubmitProgress Lines(IAnsiConsole console, int total) => new LineProgress(console, total);

    /// <summary>Called once for every file that ended in this run, from any of the run's tasks.</summary>
    public abstract void FileDone(FileOutcome outcome);

    /// <summary>A bar from 0 to 100 for one job, or null where there are no bars.</summary>
    public virtual ProgressTask? Job(string name) => null;

    private sealed class Silent : SubmitProgress
    {
        public override void FileDone(FileOutcome outcome)
        {
        }
    }

    private sealed class BarProgress(ProgressContext context, int total) : SubmitProgress
    {
        private readonly ProgressTask _overall = context.AddTask($"[bold]{total} file(s)[/]", maxValue: Math.Max(total, 1));

        public override void FileDone(FileOutcome outcome) => _overall.Increment(1);

        public override ProgressTask? Job(string name) => context.AddTask(Markup.Escape(name), maxValue: 100);
    }

    /// <summary><c>[ 3/51] photos/clip.mp4: succeeded</c>, and a failure's code and message after its status.</summary>
    private sealed class LineProgress(IAnsiConsole console, int total) : SubmitProgress
    {
        private readonly Lock _lock = new();
        private readonly int _width = total.ToString(CultureInfo.InvariantCulture).Length;
        private int _done;

        public override void FileDone(FileOutcome outcome)
        {
            // One line per file, whatever the message holds.
            var error = outcome.ErrorCode is null ? "" : $" {outcome.ErrorCode}: {outcome.ErrorMessage?.ReplaceLineEndings(" ")}";
            lock (_lock)
            {
                _done++;
                var count = _done.ToString(CultureInfo.InvariantCulture).PadLeft(_width);
                console.Profile.Out.Writer.WriteLine($"[{count}/{total}] {outcome.File.ReplaceLineEndings(" ")}: {outcome.Status}{error}");
            }
        }
    }
}
