using System.Diagnostics;
using System.Globalization;

namespace Async.Serving.Fixtures;

/// <summary>
/// Videos made by the OS's ffmpeg, shared by the integration tests and the benchmark (compiled into
/// both from tests/Shared): shots built from the scene images (each with a slow zoom, so frames
/// within a shot are not identical), H.264 in MP4 with the index at the end (as cameras write it),
/// optionally with text drawn over a time window.
/// </summary>
internal static class SceneVideos
{
    public sealed record Caption(string Text, double From, double To);

    /// <summary>One shot per (seed, seconds), cut hard from one to the next.</summary>
    public static Task<byte[]> ShotsAsync(IReadOnlyList<(int Seed, double Seconds)> shots, Caption? caption = null, int width = 480, int height = 360, int fps = 25)
    {
        var join = string.Concat(Enumerable.Range(0, shots.Count).Select(i => $"[v{i}]")) + $"concat=n={shots.Count}:v=1:a=0";
        if (caption is not null)
        {
            var font = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";
            join += $",drawtext=fontfile={font}:text='{caption.Text}':fontsize={height / 11}:fontcolor=white:borderw=3:bordercolor=black"
                + $":x=(w-text_w)/2:y=h-text_h-{height / 12}:enable='between(t,{F(caption.From)},{F(caption.To)})'";
        }

        return RenderAsync(shots, join + "[out]", width, height, fps);
    }

    /// <summary>
    /// Two scenes of <paramref name="seconds"/> each (each with the slow zoom), joined by a dissolve of
    /// <paramref name="transition"/> seconds centred on the join (ffmpeg's <c>xfade</c>).
    /// </summary>
    public static Task<byte[]> DissolveAsync(int seedA, int seedB, double seconds, double transition, int width = 480, int height = 360, int fps = 25)
    {
        var length = seconds + (transition / 2);
        return RenderAsync([(seedA, length), (seedB, length)],
            $"[v0]format=yuv420p[a];[v1]format=yuv420p[b];[a][b]xfade=transition=fade:duration={F(transition)}:offset={F(seconds - (transition / 2))}[out]",
            width, height, fps);
    }

    /// <summary>
    /// Renders each scene as its still image looped for its seconds with the slow zoom (filter
    /// labels <c>[v0]</c>, <c>[v1]</c>, …), joins them with <paramref name="join"/> (a filter graph
    /// from those labels to <c>[out]</c>), and encodes H.264 in MP4.
    /// </summary>
    private static async Task<byte[]> RenderAsync(IReadOnlyList<(int Seed, double Seconds)> scenes, string join, int width, int height, int fps)
    {
        var dir = Directory.CreateTempSubdirectory("serving-test-video-");
        try
        {
            var args = new List<string> { "-hide_banner", "-loglevel", "error", "-y" };
            var filters = new List<string>();
            for (var i = 0; i < scenes.Count; i++)
            {
                var image = Path.Combine(dir.FullName, $"scene{i}.jpg");
                await File.WriteAllBytesAsync(image, SceneImages.Scene(scenes[i].Seed, width * 2, height * 2));
                args.AddRange(["-loop", "1", "-framerate", F(fps), "-t", F(scenes[i].Seconds), "-i", image]);
                var frames = (int)Math.Round(scenes[i].Seconds * fps);
                filters.Add($"[{i}:v]zoompan=z='1+0.0015*on':d={frames}:s={width}x{height}:fps={fps},trim=end_frame={frames},setpts=PTS-STARTPTS,setsar=1[v{i}]");
            }

            filters.Add(join);
            var output = Path.Combine(dir.FullName, "video.mp4");
            args.AddRange(["-filter_complex", string.Join(';', filters), "-map", "[out]", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-r", F(fps), output]);
            await RunAsync("ffmpeg", args);
            return await File.ReadAllBytesAsync(output);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>
    /// <paramref name="video"/> encoded again by ffmpeg with <paramref name="outputArguments"/> (codec,
    /// pixel format, frames) into a file of type <paramref name="extension"/>: the same scenes in
    /// another form, such as a 10-bit 4:4:4 Matroska or a single frame.
    /// </summary>
    public static async Task<byte[]> TranscodeAsync(byte[] video, string extension, params string[] outputArguments)
    {
        var dir = Directory.CreateTempSubdirectory("serving-test-video-");
        try
        {
            var input = Path.Combine(dir.FullName, "input.mp4");
            var output = Path.Combine(dir.FullName, "output." + extension);
            await File.WriteAllBytesAsync(input, video);
            await RunAsync("ffmpeg", ["-hide_banner", "-loglevel", "error", "-y", "-i", input, .. outputArguments, output]);
            return await File.ReadAllBytesAsync(output);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static string F(double value) => value.ToString(CultureInfo.InvariantCulture);

    private static async Task RunAsync(string program, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} failed: {stderr}");
        }
    }
}
