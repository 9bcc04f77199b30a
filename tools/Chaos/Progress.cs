namespace Async.Serving.Chaos;

/// <summary>Progress lines on stderr (scripts/chaos.sh keeps them in its log); stdout carries only the count line.</summary>
internal static class Progress
{
    private static readonly DateTime Started = DateTime.UtcNow;

    private static DateTime _lastEvery = DateTime.MinValue;

    public static void Say(string line) =>
        Console.Error.WriteLine($"[{DateTime.UtcNow:HH:mm:ss} +{(DateTime.UtcNow - Started).TotalSeconds,4:F0}s] {line}");

    /// <summary>A line from a wait loop, at most once per <paramref name="interval"/>, so that a failed run's log tail still says something.</summary>
    public static void Every(TimeSpan interval, string line)
    {
        if (DateTime.UtcNow - _lastEvery >= interval)
        {
            _lastEvery = DateTime.UtcNow;
            Say(line);
        }
    }
}
