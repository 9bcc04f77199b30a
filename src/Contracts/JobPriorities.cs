namespace Async.Serving.Contracts;

/// <summary>
/// A job's priority: which lane of its model's queue it waits in (docs/priorities.md). A worker
/// takes higher lanes first without starving lower ones; a job without one is <see cref="Normal"/>.
/// </summary>
public static class JobPriorities
{
    public const string Low = "low";
    public const string Normal = "normal";
    public const string High = "high";

    /// <summary>Highest first, the order in which lanes are offered a free slot.</summary>
    public static readonly IReadOnlyList<string> All = [High, Normal, Low];

    public static bool IsValid(string? priority) => priority is Low or Normal or High;

    /// <summary>The priority as stored or sent, <see cref="Normal"/> for none (a job of an older build) or an unknown one.</summary>
    public static string OrNormal(string? priority) => IsValid(priority) ? priority! : Normal;
}
