using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Async.Serving.Jobs;
using Async.Serving.Worker.Inference;

namespace Async.Serving.Worker.Video;

/// <summary>
/// The OS's ffmpeg and ffprobe, run as child processes. Frames come out of ffmpeg's stdout as a
/// stream of binary PPM images (raw RGB24 behind a one-line header that carries the size, so a
/// rotated phone video needs no guessing), read one at a time: the decoded video is never in
/// memory as a whole. Cancelling the token kills the process, which ends the pipe at once.
/// </summary>
internal static class Ffmpeg
{
    /// <summary>How a sampled frame is scaled by ffmpeg before it reaches the pipe.</summary>
    /// <param name="Width">Target width, or the bound of the longer side when <paramref name="Fit"/>.</param>
    /// <param name="Fit">Keep the aspect ratio and fit inside Width×Width, never enlarging.</param>
    /// <param name="Crop">Fill Width×Height and cut the centre (else stretch).</param>
    internal sealed record FrameShape(int Width, int Height, bool Fit, bool Crop)
    {
        public string Filter => Fit
            ? $"scale=w='min(iw,{Width})':h='min(ih,{Width})':force_original_aspect_ratio=decrease"
            : Crop
                ? $"scale={Width}:{Height}:force_original_aspect_ratio=increase,crop={Width}:{Height}"
                : $"scale={Width}:{Height}";
    }

    public static async Task<VideoProbe> ProbeAsync(string path, CancellationToken cancellationToken)
    {
        var (exitCode, stdout, stderr) = await RunToEndAsync("ffprobe",
            ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height,codec_name:format=duration,format_name", "-of", "json", path],
            TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        if (exitCode != 0)
        {
            throw NotAVideo(stderr, path);
        }

        using var json = JsonDocument.Parse(stdout);
        if (!json.RootElement.TryGetProperty("streams", out var streams) || streams.GetArrayLength() == 0)
        {
            throw new JobFailureException(JobErrorCodes.InputInvalid, "The input has no video stream.");
        }

        var stream = streams[0];
        var format = json.RootElement.TryGetProperty("format", out var f) ? f : default;
        double? duration = format.ValueKind == JsonValueKind.Object && format.TryGetProperty("duration", out var d)
            && double.TryParse(d.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds > 0
                ? seconds
                : await MeasureDurationAsync(path, cancellationToken).ConfigureAwait(false);
        return new VideoProbe(
            duration,
            stream.TryGetProperty("width", out var w) ? w.GetInt32() : 0,
            stream.TryGetProperty("height", out var h) ? h.GetInt32() : 0,
            stream.TryGetProperty("codec_name", out var c) ? c.GetString() ?? "?" : "?",
            format.ValueKind == JsonValueKind.Object && format.TryGetProperty("format_name", out var n) ? n.GetString() ?? "?" : "?");
    }

    /// <summary>
    /// The duration of a file whose container declares none (Matroska or WebM written to a pipe, a
    /// live recording): the video stream's packets are read without decoding, and the span from the
    /// first packet's start to the last one's end is taken. Null when there are no timed packets.
    /// </summary>
    private static async Task<double?> MeasureDurationAsync(string path, CancellationToken cancellationToken)
    {
        var (exitCode, stdout, stderr) = await RunToEndAsync("ffprobe",
            ["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0", path],
            TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
        if (exitCode != 0)
        {
            throw NotAVideo(stderr, path);
        }

        double first = double.MaxValue, last = double.MinValue;
        foreach (var line in stdout.AsSpan().EnumerateLines())
        {
            var comma = line.IndexOf(',');
            var pts = comma < 0 ? line : line[..comma];
            if (!double.TryParse(pts, NumberStyles.Float, CultureInfo.InvariantCulture, out var start))
            {
                continue;
            }

            var length = comma >= 0 && double.TryParse(line[(comma + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var l) ? l : 0;
            first = Math.Min(first, start);
            last = Math.Max(last, start + length);
        }

        return last > first ? last - first : null;
    }

    /// <summary>Frames sampled at <paramref name="fps"/>, in order. Frame i is at i / fps seconds.</summary>
    public static async IAsyncEnumerable<VideoFrame> ReadFramesAsync(
        string path, double fps, FrameShape shape, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var process = Start("ffmpeg",
        [
            "-nostdin", "-hide_banner", "-loglevel", "error", "-i", path, "-map", "0:v:0", "-an", "-sn", "-dn",
            "-vf", FrameFilter(fps, shape), "-f", "image2pipe", "-c:v", "ppm", "pipe:1",
        ]);
        var stderr = DrainAsync(process.StandardError);
        await using var kill = cancellationToken.Register(static p => Kill((Process)p!), process).ConfigureAwait(false);
        var output = new BufferedStream(process.StandardOutput.BaseStream, 1 << 16);
        var index = 0;
        try
        {
            while (true)
            {
                var header = await ReadHeaderAsync(output, cancellationToken).ConfigureAwait(false);
                if (header is not { } size)
                {
                    break;
                }

                var (width, height) = size;
                var length = width * height * 3;
                var pixels = ArrayPool<byte>.Shared.Rent(length);
                try
                {
                    await output.ReadExactlyAsync(pixels.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
                }
                catch (EndOfStreamException)
                {
                    ArrayPool<byte>.Shared.Return(pixels);
                    break;
                }
                catch
                {
                    ArrayPool<byte>.Shared.Return(pixels);
                    throw;
                }

                yield return new VideoFrame(index, index / fps, width, height, pixels);
                index++;
            }
        }
        finally
        {
            Kill(process);
        }

        cancellationToken.ThrowIfCancellationRequested();
        await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        var errors = await stderr.ConfigureAwait(false);
        if (index == 0)
        {
            throw NotAVideo(errors, path);
        }
    }

    /// <summary>
    /// The filter chain behind <see cref="ReadFramesAsync"/>: sample at <paramref name="fps"/>, scale,
    /// then 8-bit RGB. Without <c>format=rgb24</c> a 10-bit, 12-bit or 4:4:4 video (a camera's HDR or
    /// log footage, a screen recording) comes out as a 16-bit PPM; without <c>eof_action=pass</c> a
    /// video shorter than half a sampling interval (a single frame, a still made into an MP4) yields
    /// no frame at all, since its one frame rounds to after the end.
    /// </summary>
    private static string FrameFilter(double fps, FrameShape shape) =>
        $"fps={fps.ToString("0.######", CultureInfo.InvariantCulture)}:eof_action=pass,{shape.Filter},format=rgb24";

    /// <summary>An <c>input_invalid</c> failure with ffmpeg's last word, the worker's temporary file named "input" in it.</summary>
    private static JobFailureException NotAVideo(string stderr, string path)
    {
        var detail = stderr.Trim().Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault()?.Trim().Replace(path, "input", StringComparison.Ordinal);
        return new JobFailureException(JobErrorCodes.InputInvalid,
            "The input is not a decodable video" + (string.IsNullOrEmpty(detail) ? "." : $" (ffmpeg: {Truncate(detail, 200)})."));
    }

    private static string Truncate(string text, int max) => text.Length <= max ? text : text[..max] + "…";

    /// <summary>Reads "P6 width height 255" and the single whitespace before the pixels; null at the end of the stream.</summary>
    private static async ValueTask<(int Width, int Height)?> ReadHeaderAsync(Stream stream, CancellationToken cancellationToken)
    {
        var fields = new long[4];
        var one = new byte[1];
        for (var field = 0; field < 4; field++)
        {
            var started = false;
            long value = 0;
            while (true)
            {
                if (await stream.ReadAsync(one, cancellationToken).ConfigureAwait(false) == 0)
                {
                    if (field == 0 && !started)
                    {
                        return null;
                    }

                    throw new EndOfStreamException("ffmpeg's output ended inside a frame header.");
                }

                var b = one[0];
                if (b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t')
                {
                    if (started)
                    {
                        break;
                    }

                    continue;
                }

                started = true;
                if (field == 0)
                {
                    value = value * 256 + b; // the magic "P6"
                }
                else if (b is >= (byte)'0' and <= (byte)'9' && value < 1_000_000)
                {
                    value = (value * 10) + (b - '0');
                }
                else
                {
                    throw new InvalidDataException($"Unexpected byte {b} in a PPM header from ffmpeg.");
                }
            }

            fields[field] = value;
        }

        if (fields[0] != ('P' * 256) + '6' || fields[3] != 255 || fields[1] <= 0 || fields[2] <= 0)
        {
            throw new InvalidDataException("ffmpeg wrote a frame that is not an 8-bit binary PPM.");
        }

        return ((int)fields[1], (int)fields[2]);
    }

    private static Process Start(string program, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        try
        {
            return Process.Start(info) ?? throw new InvalidOperationException($"{program} did not start.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException($"{program} could not be started ({ex.Message}); install ffmpeg (scripts/up.sh does).", ex);
        }
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunToEndAsync(
        string program, IEnumerable<string> arguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var process = Start(program, arguments);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        await using var kill = limit.Token.Register(static p => Kill((Process)p!), process).ConfigureAwait(false);
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = DrainAsync(process.StandardError);
        await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        if (limit.IsCancellationRequested)
        {
            throw new JobFailureException(JobErrorCodes.InputInvalid, $"{program} did not finish reading the input within {timeout.TotalSeconds:F0} s.");
        }

        return (process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }

    /// <summary>Reads stderr to its end (a full pipe would stall ffmpeg), keeping the last 4 KB.</summary>
    private static async Task<string> DrainAsync(StreamReader reader)
    {
        var tail = new StringBuilder();
        var buffer = new char[1024];
        int read;
        while ((read = await reader.ReadAsync(buffer, CancellationToken.None).ConfigureAwait(false)) > 0)
        {
            tail.Append(buffer, 0, read);
            if (tail.Length > 4096)
            {
                tail.Remove(0, tail.Length - 4096);
            }
        }

        return tail.ToString();
    }

    private static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // Exiting as we asked.
        }
    }
}
