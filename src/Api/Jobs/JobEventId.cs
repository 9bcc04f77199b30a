using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Async.Serving.Jobs;

namespace Async.Serving.Api.Jobs;

/// <summary>
/// The SSE <c>id:</c> of a job event, derived from the job's state alone, so that a client may
/// reconnect to any API instance with <c>Last-Event-ID</c>: <c>{attempt}.{phase}.{permille}</c>, where
/// phase is 0 queued, 1 running, 2 ended, and permille the progress in thousandths. Ids compare as
/// that triple of integers; within a round of a job the triple only grows (attempts only count up,
/// a new attempt starts at phase 1, an ended job does not change), so "newer than the last id" is
/// exactly "not seen yet".
/// </summary>
public readonly record struct JobEventId(int Attempt, int Phase, int Permille) : IComparable<JobEventId>
{
    public const int Queued = 0;
    public const int Running = 1;
    public const int Ended = 2;

    public bool IsEnded => Phase == Ended;

    public static JobEventId From(JobRecord job)
    {
        ArgumentNullException.ThrowIfNull(job);
        var phase = JobStatuses.IsTerminal(job.Status) ? Ended : job.Status == JobStatuses.Running ? Running : Queued;
        // Floor, not round: 0.9996 must not read as 1000 before the job has ended.
        var permille = (int)Math.Floor(Math.Clamp(job.Progress, 0, 1) * 1000);
        return new JobEventId(job.Attempts, phase, permille);
    }

    public static bool TryParse(string? text, [NotNullWhen(true)] out JobEventId? id)
    {
        id = null;
        var parts = text?.Split('.');
        if (parts is not { Length: 3 }
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var attempt)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var phase) || phase > Ended
            || !int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var permille) || permille > 1000)
        {
            return false;
        }

        id = new JobEventId(attempt, phase, permille);
        return true;
    }

    public int CompareTo(JobEventId other) =>
        Attempt != other.Attempt ? Attempt.CompareTo(other.Attempt)
        : Phase != other.Phase ? Phase.CompareTo(other.Phase)
        : Permille.CompareTo(other.Permille);

    public static bool operator <(JobEventId left, JobEventId right) => left.CompareTo(right) < 0;

    public static bool operator >(JobEventId left, JobEventId right) => left.CompareTo(right) > 0;

    public static bool operator <=(JobEventId left, JobEventId right) => left.CompareTo(right) <= 0;

    public static bool operator >=(JobEventId left, JobEventId right) => left.CompareTo(right) >= 0;

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Attempt}.{Phase}.{Permille}");
}
