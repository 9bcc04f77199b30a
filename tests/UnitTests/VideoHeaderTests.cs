using System.Diagnostics;
using Async.Serving.Api.Jobs;
using Async.Serving.Worker.Video;

namespace Async.Serving.UnitTests;

/// <summary>Durations read from container headers (at the API) or measured (in the worker), of videos the OS's ffmpeg writes here.</summary>
public sealed class VideoHeaderTests
{
    private const double Seconds = 3.4;

    /// <summary>A 3.4 s test pattern written by ffmpeg with <paramref name="arguments"/> to a file named <paramref name="name"/> (or to a pipe).</summary>
    private static async Task<byte[]> FfmpegAsync(string name, string arguments, bool pipe = false)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("video-header-").FullName, name);
        var start = new ProcessStartInfo("ffmpeg",
            $"-v error -nostdin -f lavfi -i testsrc2=size=160x120:rate=10:duration={Seconds} {arguments} " + (pipe ? "-" : path))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        using var output = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(output);
        var error = await process.StandardError.ReadToEndAsync();
        await copy;
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, error);
        var bytes = pipe ? output.ToArray() : await File.ReadAllBytesAsync(path);
        Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        return bytes;
    }

    [Theory]
    [InlineData("camera.mp4", "-c:v libx264")] // the index (moov) after the media data
    [InlineData("web.mp4", "-c:v libx264 -movflags +faststart")] // the index first
    [InlineData("clip.mov", "-c:v libx264")]
    [InlineData("clip.mkv", "-c:v libx264")]
    [InlineData("clip.webm", "-c:v libvpx -deadline realtime")]
    public async Task The_declared_duration_is_read_from_the_header(string name, string arguments)
    {
        var video = await FfmpegAsync(name, arguments);
        Assert.Equal(Seconds, VideoHeader.ReadDurationSeconds(video)!.Value, 0.05);
    }

    [Fact]
    public async Task A_container_that_declares_no_duration_gives_none()
    {
        // Matroska written to a pipe cannot go back to fill in its duration; fragmented MP4 declares 0.
        Assert.Null(VideoHeader.ReadDurationSeconds(await FfmpegAsync("live.mkv", "-c:v libx264 -f matroska", pipe: true)));
        Assert.Null(VideoHeader.ReadDurationSeconds(await FfmpegAsync("frag.mp4", "-c:v libx264 -movflags frag_keyframe+empty_moov")));
    }

    [Fact]
    public async Task The_worker_measures_the_duration_a_container_does_not_declare()
    {
        // Passes the door without a duration; ffprobe in the worker then reads the packets' times.
        var live = await FfmpegAsync("live.mkv", "-c:v libx264 -f matroska", pipe: true);
        Assert.Null(VideoHeader.ReadDurationSeconds(live));
        var path = Path.Combine(Path.GetTempPath(), $"video-header-{Guid.NewGuid():N}.mkv");
        await File.WriteAllBytesAsync(path, live);
        try
        {
            var probe = await Ffmpeg.ProbeAsync(path, CancellationToken.None);
            Assert.Equal(Seconds, probe.DurationSeconds!.Value, 0.15);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task Truncated_and_damaged_headers_give_none_and_never_throw()
    {
        var mp4 = await FfmpegAsync("web.mp4", "-c:v libx264 -movflags +faststart");
        var mkv = await FfmpegAsync("clip.mkv", "-c:v libx264");
        var random = new Random(5);
        foreach (var video in new[] { mp4, mkv })
        {
            // Every prefix of the header region, and the file with bytes flipped at random.
            for (var length = 0; length < 600; length += 7)
            {
                var duration = VideoHeader.ReadDurationSeconds(video.AsSpan(0, Math.Min(length, video.Length)));
                Assert.True(duration is null or > 0);
            }

            for (var i = 0; i < 300; i++)
            {
                var damaged = (byte[])video.Clone();
                for (var j = 0; j < 8; j++)
                {
                    damaged[random.Next(Math.Min(damaged.Length, 400))] = (byte)random.Next(256);
                }

                var duration = VideoHeader.ReadDurationSeconds(damaged);
                Assert.True(duration is null or > 0);
            }
        }

        Assert.Null(VideoHeader.ReadDurationSeconds("RIFF\0\0\0\0AVI LIST"u8));
        Assert.Null(VideoHeader.ReadDurationSeconds([]));
    }
}
