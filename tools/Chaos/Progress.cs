namespace Async.Serving.Chaos;

/// <summary>Progress lines on stderr (scripts/chaos.sh keeps them in its log); stdout carries only the count line.</summary>
internal static class Progress
{
    private static readonly DateTime Started = DateTime.UtcNow;

    public static void Say(string line) =>
        Console.Error.WriteLine($"[{DateTime.UtcNow:HH:mm:ss} +{(DateTime.UtcNow - Started).TotalSeconds,4:F0}s] {line}");
}
