using System.Diagnostics;
using System.Globalization;

namespace Async.Serving.Worker.Video;

/// <summary>
/// Where this worker writes the videos it analyses: <c>{temp}/async-serving-video/{process id}</c>.
/// A worker killed mid-video leaves its folder behind; at start-up, before any job is taken, a
/// worker removes the folders of processes that no longer exist.
/// </summary>
internal sealed partial class VideoWorkspace(ILogger<VideoWorkspace> logger) : IHostedService
{
    private static readonly string Root = Path.Combine(Path.GetTempPath(), "async-serving-video");

    public string Directory { get; } = Path.Combine(Root, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (System.IO.Directory.Exists(Root))
        {
            foreach (var dir in System.IO.Directory.EnumerateDirectories(Root))
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid != Environment.ProcessId && !IsAlive(pid))
                {
                    try
                    {
                        System.IO.Directory.Delete(dir, recursive: true);
                        LogStaleRemoved(logger, dir);
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        LogStaleKept(logger, dir, ex.Message);
                    }
                }
            }
        }

        System.IO.Directory.CreateDirectory(Directory);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    [LoggerMessage(EventId = 231, Level = LogLevel.Information, Message = "Removed {Directory}, left by a worker that is gone")]
    private static partial void LogStaleRemoved(ILogger logger, string directory);

    [LoggerMessage(EventId = 232, Level = LogLevel.Warning, Message = "Could not remove {Directory}: {Reason}")]
    private static partial void LogStaleKept(ILogger logger, string directory, string reason);
}
