using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Async.Serving.Jobs;
using StackExchange.Redis;

namespace Async.Serving.Benchmark;

/// <summary>What a queued large video costs Redis once its bytes wait in the blob store (docs/blobs.md).</summary>
internal sealed record BlobFigure(
    int Videos, long VideoBytes, int Queued, long RedisUsedMemoryBefore, long RedisUsedMemoryAfter, double RedisBytesPerQueuedVideo,
    double SampledKeyBytesPerVideo, double SharedKeyBytesPerVideo, double SharedKeyGrowthPerVideo, double KeyBytesPerVideo, long BlobBytes,
    double SubmitSecondsPerVideo, long? ApiPeakRssBytes, int BlobsLeftAfterCancel, BlobKeyBreakdown Breakdown);

/// <summary>
/// Where <see cref="BlobFigure.KeyBytesPerVideo"/> goes, per queued video (<c>MEMORY USAGE … SAMPLES 0</c>):
/// its own keys, and per member of each kind of shared key it joined (the key's bytes over its
/// members: a video adds one member to each); what each kind grew by over the videos (noisier: a
/// listpack over 16 KiB grows by allocator steps of 4 KiB); the encodings Redis chose; one job hash's
/// fields with the bytes of each value; whether the ledger writer had committed (and deleted) every
/// ledger entry up to the submits when the shared keys were measured.
/// </summary>
internal sealed record BlobKeyBreakdown(
    double JobHash, double InputKey, IReadOnlyDictionary<string, double> SharedBytesPerMember, IReadOnlyDictionary<string, long> SharedMembers,
    IReadOnlyDictionary<string, double> SharedGrowthPerVideo, IReadOnlyDictionary<string, string> Encodings, IReadOnlyList<BlobHashField> JobHashFields,
    bool LedgerCommitted);

internal sealed record BlobHashField(string Name, int ValueBytes);

internal sealed partial class BenchRun
{
    /// <summary>The kinds of shared key a queued job adds an entry to, as named in <see cref="BlobKeyBreakdown"/>.</summary>
    private const string TenantIndex = "tenantIndex", QueuedByExpiry = "queuedByExpiry", QueuedByModel = "queuedByModel", Flights = "cacheFlights", Ledger = "ledgerStream";

    /// <summary>
    /// Step 11: <see cref="BenchOptions.BlobVideos"/> distinct H.264 videos of 50–100 MiB submitted
    /// as multipart to <c>bench-video</c> with no worker running, so each stays queued: the bytes of
    /// each job's own keys and of the entries it added to shared keys (<c>MEMORY USAGE</c>; goal: under
    /// 1 KiB in all), key by key, measured once the ledger writer has committed the jobs' ledger entries
    /// (it deletes what it committed: a queued job's steady state); Redis's <c>used_memory</c> before
    /// and after; the bytes in the blob store; the API's peak RSS (the uploads stream to disk, not
    /// memory). The jobs are then cancelled, which deletes their blobs at once.
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
        // One warm-up video (connection, JIT) that is not counted; then small queued jobs until every
        // shard holds one (its indexes exist, as with any backlog) and the API's ledger writer has
        // joined every shard's stream (a consumer costs ~280 B per stream once per API process, not
        // per job); then the writer commits everything written so far.
        var ids = new List<string> { await SubmitVideoAsync(http, video, 0).ConfigureAwait(false) };
        var warm = await WarmShardsAsync(http).ConfigureAwait(false);
        ids.AddRange(warm);
        await LedgerCommittedAsync().ConfigureAwait(false);
        var before = await UsedMemoryAsync().ConfigureAwait(false);
        var sharedBefore = await SharedKeyBytesAsync().ConfigureAwait(false);
        var submitting = Stopwatch.GetTimestamp();
        for (var i = 1; i <= options.BlobVideos; i++)
        {
            ids.Add(await SubmitVideoAsync(http, video, i).ConfigureAwait(false));
        }

        var submitSeconds = Stopwatch.GetElapsedTime(submitting).TotalSeconds;
        var committed = await LedgerCommittedAsync().ConfigureAwait(false);
        var after = await UsedMemoryAsync().ConfigureAwait(false);
        var sharedAfter = await SharedKeyBytesAsync().ConfigureAwait(false);
        _jobIds.AddRange(ids);
        var counted = ids.Skip(1 + warm.Count).ToList();

        long jobHashes = 0, inputKeys = 0, blobBytes = 0;
        var queued = 0;
        var root = Environment.GetEnvironmentVariable("Serving__Blobs__Root") ?? Path.Combine(Path.GetTempPath(), "async-serving-blobs");
        foreach (var id in counted)
        {
            jobHashes += await MemoryUsageAsync(RedisJobStore.JobKey(id)).ConfigureAwait(false);
            inputKeys += await MemoryUsageAsync(RedisJobStore.InputKey(id)).ConfigureAwait(false);
            queued += (string?)await db.HashGetAsync(RedisJobStore.JobKey(id), "status") == "queued" ? 1 : 0;
            var blob = new FileInfo(Path.Combine(root, "inputs", id));
            blobBytes += blob.Exists ? blob.Length : 0;
        }

        var first = counted[0];
        var shard = RedisJobStore.ShardOf(first);
        var encodings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, key) in new (string, RedisKey)[]
        {
            ("jobHash", RedisJobStore.JobKey(first)), ("inputKey", RedisJobStore.InputKey(first)), (TenantIndex, RedisJobStore.TenantIndexKey(BenchTenant)),
            (QueuedByExpiry, RedisJobStore.QueuedByExpiry(shard)), (QueuedByModel, RedisJobStore.QueuedByModel(shard)), (Flights, RedisJobStore.CacheFlights(shard)), (Ledger, RedisJobStore.LedgerStream(shard)),
        })
        {
            var encoding = await db.ExecuteAsync("OBJECT", "ENCODING", key).ConfigureAwait(false);
            encodings[name] = encoding.IsNull ? "(none)" : encoding.ToString();
        }

        var fields = (await db.HashGetAllAsync(RedisJobStore.JobKey(first)).ConfigureAwait(false))
            .Select(f => new BlobHashField(f.Name.ToString(), (int)f.Value.Length())).ToList();

        var apiPeak = ProcStats.StatusBytes(_api!.Pid, "VmHWM");
        foreach (var id in ids)
        {
            using var cancelled = await http.PostAsync(new Uri($"/v1/jobs/{id}/cancel", UriKind.Relative), null).ConfigureAwait(false);
        }

        var left = ids.Count(id => File.Exists(Path.Combine(root, "inputs", id)));
        File.Delete(video);
        double PerVideo(double bytes) => Math.Round(bytes / counted.Count, 1);
        var perMember = sharedAfter.ToDictionary(k => k.Key, k => k.Value.Members == 0 ? 0 : Math.Round((double)k.Value.Bytes / k.Value.Members, 1), StringComparer.Ordinal);
        var growth = sharedAfter.ToDictionary(k => k.Key, k => PerVideo(k.Value.Bytes - sharedBefore[k.Key].Bytes), StringComparer.Ordinal);
        var breakdown = new BlobKeyBreakdown(PerVideo(jobHashes), PerVideo(inputKeys), perMember, sharedAfter.ToDictionary(k => k.Key, k => k.Value.Members, StringComparer.Ordinal),
            growth, encodings, fields, committed);
        var own = PerVideo(jobHashes + inputKeys);
        var shared = Math.Round(perMember.Values.Sum(), 1);
        var figure = new BlobFigure(counted.Count, size, queued, before, after, PerVideo(after - before),
            own, shared, Math.Round(growth.Values.Sum(), 1), Math.Round(own + shared, 1), blobBytes, Math.Round(submitSeconds / counted.Count, 2), apiPeak, left, breakdown);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {counted.Count} videos of {size / 1048576.0:F0} MiB queued ({queued} still queued): Redis used_memory +{after - before:N0} B = {figure.RedisBytesPerQueuedVideo:F0} B per video (job hash + input key: {figure.SampledKeyBytesPerVideo:F0} B, + a member of each index, flight map and ledger stream: {figure.SharedKeyBytesPerVideo:F0} B = {figure.KeyBytesPerVideo:F0} B; those keys grew by {figure.SharedKeyGrowthPerVideo:F0} B per video); blob store {blobBytes / 1048576.0:F0} MiB; {figure.SubmitSecondsPerVideo:F2} s per upload; API peak RSS {Mib(apiPeak)}; blobs left after cancelling: {left}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  per video: job hash {breakdown.JobHash:F0} B ({encodings["jobHash"]}), input key {breakdown.InputKey:F0} B ({encodings["inputKey"]}); per member (grown by per video; members; encoding): {string.Join(", ", perMember.Keys.Select(k => $"{k} {perMember[k]:F0} B ({growth[k]:F0} B; {sharedAfter[k].Members}; {encodings[k]})"))}; ledger: {(committed ? "every entry committed and deleted by the ledger writer" : "the ledger writer had NOT caught up")}"));
        Console.WriteLine($"  job hash of {first}: {string.Join(' ', fields.Select(f => $"{f.Name}={f.ValueBytes}"))} (value bytes)");
        return figure;
    }

    /// <summary>
    /// Submits <see cref="BenchOptions.BlobBacklog"/> distinct 8×8 PNGs to <c>bench-trivial</c> (no
    /// worker: they stay queued), 16 at a time, and more until every shard holds a queued job; then
    /// waits until the API's ledger writer is a consumer of every shard's ledger stream (a consumer
    /// joins a stream's group when it is first handed an entry there). Returns their ids.
    /// </summary>
    private async Task<List<string>> WarmShardsAsync(HttpClient http)
    {
        var db = _redis!.GetDatabase();
        var ids = new List<string>();
        while (ids.Count < options.BlobBacklog || !RedisJobStore.Shards.All(shard => ids.Any(id => RedisJobStore.ShardOf(id) == shard)))
        {
            var start = ids.Count;
            ids.AddRange(await Task.WhenAll(Enumerable.Range(start, 16).Select(async i =>
            {
                var body = "{\"pipeline\":\"image.embed\",\"model\":\"" + BenchRepository.Trivial + "\",\"input\":{\"base64\":\"" + Convert.ToBase64String(DistinctPng(i)) + "\"}}";
                using var response = await http.PostAsync(new Uri("/v1/jobs", UriKind.Relative), new StringContent(body, System.Text.Encoding.UTF8, "application/json")).ConfigureAwait(false);
                var text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
                if (!response.IsSuccessStatusCode)
                {
                    throw new InvalidOperationException($"A backlog submit answered {(int)response.StatusCode}: {text}");
                }

                using var json = JsonDocument.Parse(text);
                return json.RootElement.GetProperty("id").GetString()!;
            })).ConfigureAwait(false));
        }

        var consumer = $"{Environment.MachineName}-{_api!.Pid}-"; // how RedisStreamGroup names the API's consumer
        var missing = RedisJobStore.Shards.ToHashSet(StringComparer.Ordinal);
        var waiting = Stopwatch.GetTimestamp();
        while (missing.Count > 0 && Stopwatch.GetElapsedTime(waiting) < TimeSpan.FromMinutes(2))
        {
            foreach (var shard in missing.ToList())
            {
                try
                {
                    var consumers = await db.StreamConsumerInfoAsync(RedisJobStore.LedgerStream(shard), "ledger-writers").ConfigureAwait(false);
                    if (consumers.Any(c => c.Name.StartsWith(consumer, StringComparison.Ordinal)))
                    {
                        missing.Remove(shard);
                    }
                }
                catch (RedisServerException)
                {
                    // No group yet: no writer has read this stream.
                }
            }

            await Task.Delay(250).ConfigureAwait(false);
        }

        Console.WriteLine($"  a backlog of {ids.Count} small queued jobs first (every shard holds some); the API's ledger writer reads {RedisJobStore.ShardCount - missing.Count} of {RedisJobStore.ShardCount} shards' streams");
        return ids;
    }

    /// <summary>An 8×8 PNG of its own for every <paramref name="index"/> (two pixels spell it), so no two share a cache key.</summary>
    private static byte[] DistinctPng(int index)
    {
        using var bitmap = new SkiaSharp.SKBitmap(8, 8);
        bitmap.Erase(new SkiaSharp.SKColor(40, 80, 120));
        bitmap.SetPixel(0, 0, new SkiaSharp.SKColor((byte)index, (byte)(index >> 8), (byte)(index >> 16)));
        using var image = SkiaSharp.SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary><c>MEMORY USAGE … SAMPLES 0</c> of a key (its name, value and dictionary entry), 0 when it does not exist.</summary>
    private async Task<long> MemoryUsageAsync(RedisKey key)
    {
        var usage = await _redis!.GetDatabase().ExecuteAsync("MEMORY", "USAGE", key, "SAMPLES", 0).ConfigureAwait(false);
        return usage.IsNull ? 0 : (long)usage;
    }

    /// <summary>
    /// Waits (at most 3 minutes) until the ledger writer has committed every ledger entry written so
    /// far and deleted it from its stream (it deletes what it committed, so a committed entry costs no
    /// memory once its stream node is empty): true when it has. Entries a stopped writer left pending
    /// are taken over after the writer's claim-idle time (1 minute by default).
    /// </summary>
    private async Task<bool> LedgerCommittedAsync()
    {
        var db = _redis!.GetDatabase();
        var until = new Dictionary<RedisKey, RedisValue>();
        foreach (var stream in RedisJobStore.Shards.Select(RedisJobStore.LedgerStream))
        {
            if (await db.KeyExistsAsync(stream).ConfigureAwait(false))
            {
                until[stream] = (await db.StreamInfoAsync(stream).ConfigureAwait(false)).LastGeneratedId;
            }
        }

        var waiting = Stopwatch.GetTimestamp();
        while (true)
        {
            var left = 0;
            foreach (var (stream, last) in until)
            {
                left += (await db.StreamRangeAsync(stream, "-", last, count: 1).ConfigureAwait(false)).Length;
            }

            if (left == 0)
            {
                return true;
            }

            if (Stopwatch.GetElapsedTime(waiting) > TimeSpan.FromMinutes(3))
            {
                return false;
            }

            await Task.Delay(250).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The exact size (<c>MEMORY USAGE … SAMPLES 0</c>) of the keys a queued job adds entries to beside
    /// its own, by kind: the tenant's index and every shard's queued-by-expiry, queued-by-model, cache
    /// flights (a leader of the result cache) and ledger stream. Unlike <c>used_memory</c>, untouched by other databases' traffic on the same Redis server.
    /// </summary>
    private async Task<Dictionary<string, (long Bytes, long Members)>> SharedKeyBytesAsync()
    {
        var keys = new List<(string Kind, RedisKey Key)> { (TenantIndex, RedisJobStore.TenantIndexKey(BenchTenant)) };
        foreach (var shard in RedisJobStore.Shards)
        {
            keys.AddRange([(QueuedByExpiry, RedisJobStore.QueuedByExpiry(shard)), (QueuedByModel, RedisJobStore.QueuedByModel(shard)), (Flights, RedisJobStore.CacheFlights(shard)),
                (Ledger, RedisJobStore.LedgerStream(shard))]);
        }

        var db = _redis!.GetDatabase();
        var total = new Dictionary<string, (long Bytes, long Members)>(StringComparer.Ordinal);
        foreach (var (kind, key) in keys)
        {
            var members = kind switch
            {
                Flights => await db.HashLengthAsync(key).ConfigureAwait(false),
                Ledger => await db.KeyExistsAsync(key).ConfigureAwait(false) ? await db.StreamLengthAsync(key).ConfigureAwait(false) : 0,
                _ => await db.SortedSetLengthAsync(key).ConfigureAwait(false),
            };
            var (bytes, count) = total.GetValueOrDefault(kind);
            total[kind] = (bytes + await MemoryUsageAsync(key).ConfigureAwait(false), count + members);
        }

        return total;
    }

    /// <summary><c>--only blobs</c>: the blob step alone, its figure in blobs.json.</summary>
    public async Task<BlobFigure> RunBlobsOnlyAsync()
    {
        await StartAloneAsync().ConfigureAwait(false);
        Console.WriteLine($"11. large inputs: {options.BlobVideos} videos of 50-100 MiB queued with no worker (their bytes in the blob store)");
        var figure = await BlobsAsync().ConfigureAwait(false);
        await WriteFigureAsync("blobs.json", figure).ConfigureAwait(false);
        return figure;
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
