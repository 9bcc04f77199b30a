using Async.Serving.Fixtures;

namespace Async.Serving.IntegrationTests;

/// <summary>Videos for the tests, made by ffmpeg (see tests/Shared/SceneVideos.cs).</summary>
public static class TestVideos
{
    /// <summary>One shot per (seed, seconds), cut hard from one to the next, optionally with a caption.</summary>
    public static Task<byte[]> ShotsAsync(IReadOnlyList<(int Seed, double Seconds)> shots, string? caption = null, double from = 0, double to = 0, int width = 480, int height = 360) =>
        SceneVideos.ShotsAsync(shots, caption is null ? null : new SceneVideos.Caption(caption, from, to), width, height);

    /// <summary>An MP4 whose first bytes are a real MP4's (so the API takes it) and the rest is noise.</summary>
    public static async Task<byte[]> CorruptAsync()
    {
        var video = await ShotsAsync([(5, 1.0)]);
        var corrupt = new byte[video.Length];
        new Random(7).NextBytes(corrupt);
        video.AsSpan(0, 32).CopyTo(corrupt);
        return corrupt;
    }

    /// <summary>Whether an ffmpeg process is reading this job's temporary file (its path carries the job id).</summary>
    public static bool FfmpegRunningFor(string jobId)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                if (cmdline.Split('\0')[0].EndsWith("ffmpeg", StringComparison.Ordinal) && cmdline.Contains(jobId, StringComparison.Ordinal))
                {
                    return true;
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return false;
    }
}
