using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Async.Serving.Jobs;

namespace Async.Serving.Benchmark;

/// <summary>What a queued large video costs Redis once its bytes wait in the blob store (docs/blobs.md).</summary>
internal sealed record BlobFigure(
    int Videos, long VideoBytes, int Queued, long RedisUsedMemoryBefore, long RedisUsedMemoryAfter, double RedisBytesPerQueuedVideo,
    double SampledKeyBytesPerVideo, double SharedKeyBytesPerVideo, double KeyBytesPerVideo, long BlobBytes, double SubmitSecondsPerVideo,
    long? ApiPeakRssBytes, int BlobsLeftAfterCancel);

internal sealed partial class BenchRun
{
    /// <summary>
    /// Step 10: <see cref="BenchOptions.BlobVideos"/> distinct H.264 videos of 50–100 MiB submitted
    /// as multipart to <c>bench-video</c> with no worker running, so each stays queued: Redis's
    /// <c>used_memory</c> before and after, divided by the videos (goal: under 1 KiB each), the job
    /// hash and input key of each (<c>MEMORY USAGE</c>), the bytes in the blob store, the API's peak
    /// RSS (the uploads stream to disk, not memory). The jobs are then cancelled, which deletes their
    /// blobs at once.
    /// </summary>
    private async Task<BlobFigure> BlobsAsync()
    {
        var video = Path.Combine(options.OutDir, "blob-video.mp4");
        var made = Stopwatch.GetTimestamp();
        await MakeNoiseVideoAsync(video).ConfigureAwait(false);
        var size = new FileInfo(video).Length;
        Console.WriteLine($"  video: 6 s of 640×360 noise, lossless H.264, {size / 1048576.0:F0} MiB (made in {Stopwatch.GetElapsedTime(made).TotalSeconds:F0} s); each upload ends with a distinct 'free' box, so no two share a cache key");

        var db = _redis!.GetDatabase();
        using var http = new HttpClient { BaseAddress = _client!.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _apiKey);
        // One warm-up submit (connection, JIT, the shard's index keys) that is not counted, then settle.
        var ids = new List<string> { await SubmitVideoAsync(http, video, 0).ConfigureAwait(false) };
        await Task.Delay(1000).ConfigureAwait(false);
        var before = await UsedMemoryAsync().ConfigureAwait(false);
        var sharedBefore = await SharedKeyBytesAsync().ConfigureAwait(false);
        var submitting = Stopwatch.GetTimestamp();
        for (var i = 1; i <= options.BlobVideos; i++)
        {
            ids.Add(await SubmitVideoAsync(http, video, i).ConfigureAwait(false));
        }

        var submitSeconds = Stopwatch.GetElapsedTime(submitting).TotalSeconds;
        await Task.Delay(1000).ConfigureAwait(false);
        var after = await UsedMemoryAsync().ConfigureAwait(false);
        var sharedAfter = await SharedKeyBytesAsync().ConfigureAwait(false);
        _jobIds.AddRange(ids);
        var counted = ids.Skip(1).ToList();

        long keys = 0, blobBytes = 0;
        var queued = 0;
        var root = Environment.GetEnvironmentVariable("Serving__Blobs__Root") ?? Path.Combine(Path.GetTempPath(), "async-serving-blobs");
        foreach (var id in counted)
        {
            foreach (var key in new[] { RedisJobStore.JobKey(id), RedisJobStore.InputKey(id) })
            {
                var usage = await db.ExecuteAsync("MEMORY", "USAGE", key).ConfigureAwait(false);
                keys += usage.IsNull ? 0 : (long)usage;
            }

            queued += (string?)await db.HashGetAsync(RedisJobStore.JobKey(id), "status") == "queued" ? 1 : 0;
            var blob = new FileInfo(Path.Combine(root, "inputs", id));
            blobBytes += blob.Exists ? blob.Length : 0;
        }

        var apiPeak = ProcStats.StatusBytes(_api!.Pid, "VmHWM");
        foreach (var id in ids)
        {
            using var cancelled = await http.PostAsync(new Uri($"/v1/jobs/{id}/cancel", UriKind.Relative), null).ConfigureAwait(false);
        }

        var left = ids.Count(id => File.Exists(Path.Combine(root, "inputs", id)));
        File.Delete(video);
        var own = (double)keys / counted.Count;
        var shared = (double)(sharedAfter - sharedBefore) / counted.Count;
        var figure = new BlobFigure(counted.Count, size, queued, before, after, Math.Round((double)(after - before) / counted.Count, 1),
            Math.Round(own, 1), Math.Round(shared, 1), Math.Round(own + shared, 1), blobBytes, Math.Round(submitSeconds / counted.Count, 2), apiPeak, left);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {counted.Count} videos of {size / 1048576.0:F0} MiB queued ({queued} still queued): Redis used_memory +{after - before:N0} B = {figure.RedisBytesPerQueuedVideo:F0} B per video (job hash + input key: {figure.SampledKeyBytesPerVideo:F0} B, + the indexes and ledger streams they joined: {figure.SharedKeyBytesPerVideo:F0} B = {figure.KeyBytesPerVideo:F0} B); blob store {blobBytes / 1048576.0:F0} MiB; {figure.SubmitSecondsPerVideo:F2} s per upload; API peak RSS {Mib(apiPeak)}; blobs left after cancelling: {left}"));
        return figure;
    }

    /// <summary>
    /// The exact size (<c>MEMORY USAGE … SAMPLES 0</c>) of the keys a queued job adds entries to beside
    /// its own: the tenant's index and every shard's queued-by-expiry, queued-by-model and ledger stream.
    /// Unlike <c>used_memory</c>, untouched by other databases' traffic on the same Redis server.
    /// </summary>
    private async Task<long> SharedKeyBytesAsync()
    {
        var db = _redis!.GetDatabase();
        var keys = new List<StackExchange.Redis.RedisKey> { RedisJobStore.TenantIndexKey(BenchTenant) };
        foreach (var shard in RedisJobStore.Shards)
        {
            keys.AddRange([RedisJobStore.QueuedByExpiry(shard), RedisJobStore.QueuedByModel(shard), RedisJobStore.LedgerStream(shard)]);
        }

        long total = 0;
        foreach (var key in keys)
        {
            var usage = await db.ExecuteAsync("MEMORY", "USAGE", key, "SAMPLES", 0).ConfigureAwait(false);
            total += usage.IsNull ? 0 : (long)usage;
        }

        return total;
    }

    /// <summary><c>--only blobs</c>: the blob step alone, its figure in blobs.json.</summary>
    public async Task<BlobFigure> RunBlobsOnlyAsync()
    {
        Directory.CreateDirectory(options.OutDir);
        _repository = BenchRepository.Create(options.ModelsDir);
        _redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(options.Redis + ",allowAdmin=true").ConfigureAwait(false);
        await PurgeQueuesAsync(delete: false).ConfigureAwait(false);
        await StartApiAsync().ConfigureAwait(false);
        Console.WriteLine($"11. large inputs: {options.BlobVideos} videos of 50-100 MiB queued with no worker (their bytes in the blob store)");
        var figure = await BlobsAsync().ConfigureAwait(false);
        await WriteBlobFigureAsync(figure).ConfigureAwait(false);
        return figure;
    }

    private async Task WriteBlobFigureAsync(BlobFigure figure)
    {
        var path = Path.Combine(options.OutDir, "blobs.json");
        await File.WriteAllTextAsync(path, JsonSerializer.Serialize(figure, new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true })).ConfigureAwait(false);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {path}"));
    }

    private async Task<string> SubmitVideoAsync(HttpClient http, string path, int index)
    {
        var file = File.OpenRead(path);
        await using (file.ConfigureAwait(false))
        {
            // A top-level ISO BMFF 'free' box of 16 bytes after the video: a valid file, distinct bytes.
            var trailer = new byte[16];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(trailer, 16);
            "free"u8.CopyTo(trailer.AsSpan(4));
            System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(trailer.AsSpan(8), index);
            using var form = new MultipartFormDataContent();
            form.Add(new StringContent("{\"pipeline\":\"video.analyze\",\"model\":\"" + BenchRepository.Video + "\",\"params\":{\"sample_fps\":1}}"), "request");
            var content = new StreamContent(new ConcatenatedStream(file, new MemoryStream(trailer)));
            content.Headers.ContentType = new MediaTypeHeaderValue("video/mp4");
            content.Headers.ContentLength = file.Length + trailer.Length;
            form.Add(content, "file", "video.mp4");
            using var response = await http.PostAsync(new Uri("/v1/jobs", UriKind.Relative), form).ConfigureAwait(false);
            var body = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"A video submit answered {(int)response.StatusCode}: {body}");
            }

            using var json = JsonDocument.Parse(body);
            return json.RootElement.GetProperty("id").GetString()!;
        }
    }

    private static async Task MakeNoiseVideoAsync(string path)
    {
        var info = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[]
        {
            "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-vf", "noise=alls=60:allf=t", "-t", "6",
            "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", "-movflags", "+faststart", path,
        })
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var errors = await process.StandardError.ReadToEndAsync().ConfigureAwait(false);
        await process.WaitForExitAsync().ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"ffmpeg failed: {errors}");
        }
    }

    /// <summary>Two streams read one after the other.</summary>
    private sealed class ConcatenatedStream(Stream first, Stream second) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) =>
            first.Read(buffer, offset, count) is var n and > 0 ? n : second.Read(buffer, offset, count);

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            await first.ReadAsync(buffer, cancellationToken).ConfigureAwait(false) is var n and > 0 ? n : await second.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
