using System.ComponentModel.DataAnnotations;
using Async.Serving.Worker.Batching;
using Async.Serving.Worker.Inference;
using Async.Serving.Worker.Ocr;

namespace Async.Serving.UnitTests;

/// <summary>
/// <see cref="DetectionBatcher"/> with a stand-in detector whose "probability map" is each image's
/// first plane, so a map that comes back shows which pixels the image was given.
/// </summary>
public sealed class DetectionBatcherTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private sealed record Run(int Count, int Width, int Height, float[] Inputs);

    /// <summary>A detector that records its runs, holds the first run until <see cref="Release"/>, and fails a batch holding an image whose first value is NaN.</summary>
    private sealed class StandIn
    {
        private readonly ManualResetEventSlim _gate = new(false);
        private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _calls;

        public List<Run> Runs { get; } = [];

        public Task Started => _started.Task;

        public void Release() => _gate.Set();

        public void Execute(Memory<float> inputs, int count, int width, int height, Span<float> maps)
        {
            if (Interlocked.Increment(ref _calls) == 1)
            {
                _started.TrySetResult();
                _gate.Wait(Wait);
            }

            var span = inputs.Span;
            var plane = width * height;
            lock (Runs)
            {
                Runs.Add(new Run(count, width, height, span.ToArray()));
            }

            for (var i = 0; i < count; i++)
            {
                if (float.IsNaN(span[i * 3 * plane]))
                {
                    throw new InvalidOperationException("poisoned image");
                }

                span.Slice(i * 3 * plane, plane).CopyTo(maps.Slice(i * plane, plane));
            }
        }
    }

    /// <summary>An image's planes: plane c holds 1000·c + 1 + y·width + x, never 0, so padding (0) shows.</summary>
    private static float[] Planes(int width, int height, float first = 0)
    {
        var planes = new float[3 * width * height];
        for (var c = 0; c < 3; c++)
        {
            for (var i = 0; i < width * height; i++)
            {
                planes[(c * width * height) + i] = (1000 * c) + 1 + i;
            }
        }

        if (first != 0)
        {
            planes[0] = first;
        }

        return planes;
    }

    [Theory]
    [InlineData(128, 32, 32, 128, 128)]
    [InlineData(128, 128, 128, 128, 128)]
    [InlineData(128, 160, 96, 256, 128)]
    [InlineData(128, 1280, 960, 1280, 1024)]
    [InlineData(128, 384, 192, 384, 256)]
    [InlineData(32, 384, 192, 384, 192)]
    [InlineData(32, 1248, 928, 1248, 928)]
    public async Task Both_sides_are_rounded_up_to_the_bucket_step(int step, int width, int height, int bucketWidth, int bucketHeight)
    {
        await using var batcher = new DetectionBatcher("det", maxBatch: 8, maxBatchPixels: 1 << 24, step, TimeSpan.Zero, 1, (_, _, _, _, _) => { });

        Assert.Equal((bucketWidth, bucketHeight), batcher.Bucket(width, height));
    }

    [Fact]
    public async Task The_batch_limit_is_the_image_count_or_fewer_for_the_pixel_budget_and_at_least_one()
    {
        await using var batcher = new DetectionBatcher("det", maxBatch: 8, maxBatchPixels: 1280 * 1280 * 2, bucketStep: 128, TimeSpan.Zero, 1, (_, _, _, _, _) => { });

        Assert.Equal(8, batcher.BatchLimit((256, 256)));
        Assert.Equal(2, batcher.BatchLimit((1280, 1280)));
        Assert.Equal(3, batcher.BatchLimit((1280, 768)));
        Assert.Equal(1, batcher.BatchLimit((2560, 2560)));
    }

    [Fact]
    public async Task Waiting_images_of_one_bucket_run_together_padded_bottom_right_and_each_gets_its_own_map()
    {
        var detector = new StandIn();
        await using var batcher = new DetectionBatcher("det", maxBatch: 8, maxBatchPixels: 1 << 24, bucketStep: 128, TimeSpan.Zero, 1, detector.Execute);

        // The first image holds the detector; the others queue behind it.
        var blocker = batcher.DetectAsync(Planes(64, 64), new float[64 * 64], 64, 64, CancellationToken.None);
        await detector.Started.WaitAsync(Wait);
        (int W, int H)[] sizes = [(96, 64), (256, 64), (128, 96), (128, 128)];
        var planes = sizes.Select(s => Planes(s.W, s.H)).ToArray();
        var maps = sizes.Select(s => new float[s.W * s.H]).ToArray();
        var tasks = sizes.Select((s, i) => batcher.DetectAsync(planes[i], maps[i], s.W, s.H, CancellationToken.None)).ToArray();
        detector.Release();
        await Task.WhenAll(tasks.Append(blocker)).WaitAsync(Wait);

        // 96×64, 128×96 and 128×128 share bucket 128×128 and run first (the oldest image's bucket), in a tensor of the largest; 256×64 alone.
        Assert.Equal([(1, 64, 64), (3, 128, 128), (1, 256, 64)], detector.Runs.Select(r => (r.Count, r.Width, r.Height)));
        Assert.Equal(2, batcher.PaddedImages);
        Assert.Equal(3, batcher.Batches);
        Assert.Equal(5, batcher.Items);
        var run = detector.Runs[1];
        const int Plane = 128 * 128;
        for (var c = 0; c < 3; c++)
        {
            for (var y = 0; y < 128; y++)
            {
                for (var x = 0; x < 128; x++)
                {
                    // The 96×64 image at the top left of its slot, zeros to its right and below it.
                    var expected = x < 96 && y < 64 ? (1000 * c) + 1 + (y * 96) + x : 0;
                    Assert.Equal(expected, run.Inputs[(c * Plane) + (y * 128) + x]);
                }
            }
        }

        for (var i = 0; i < sizes.Length; i++)
        {
            // Each map is the image's own first plane: cut back to its size from the padded map.
            Assert.Equal(planes[i].AsSpan(0, sizes[i].W * sizes[i].H).ToArray(), maps[i]);
        }
    }

    [Fact]
    public async Task With_a_step_of_32_only_images_of_one_size_share_a_run_and_none_is_padded()
    {
        var detector = new StandIn();
        await using var batcher = new DetectionBatcher("det", maxBatch: 8, maxBatchPixels: 1 << 24, bucketStep: 32, TimeSpan.Zero, 1, detector.Execute);
        var blocker = batcher.DetectAsync(Planes(32, 32), new float[32 * 32], 32, 32, CancellationToken.None);
        await detector.Started.WaitAsync(Wait);

        (int W, int H)[] sizes = [(96, 64), (128, 64), (96, 64), (96, 96), (128, 64), (96, 64)];
        var tasks = sizes.Select(s => batcher.DetectAsync(Planes(s.W, s.H), new float[s.W * s.H], s.W, s.H, CancellationToken.None)).ToArray();
        detector.Release();
        await Task.WhenAll(tasks.Append(blocker)).WaitAsync(Wait);

        Assert.Equal([(1, 32, 32), (3, 96, 64), (2, 128, 64), (1, 96, 96)], detector.Runs.Select(r => (r.Count, r.Width, r.Height)));
        Assert.Equal(0, batcher.PaddedImages);
    }

    [Fact]
    public async Task A_bucket_runs_in_batches_of_its_limit()
    {
        var detector = new StandIn();
        await using var batcher = new DetectionBatcher("det", maxBatch: 3, maxBatchPixels: 1 << 24, bucketStep: 128, TimeSpan.Zero, 1, detector.Execute);
        var blocker = batcher.DetectAsync(Planes(32, 32), new float[32 * 32], 32, 32, CancellationToken.None);
        await detector.Started.WaitAsync(Wait);

        var tasks = Enumerable.Range(0, 7).Select(_ => batcher.DetectAsync(Planes(64, 64), new float[64 * 64], 64, 64, CancellationToken.None)).ToArray();
        detector.Release();
        await Task.WhenAll(tasks.Append(blocker)).WaitAsync(Wait);

        Assert.Equal([1, 3, 3, 1], detector.Runs.Select(r => r.Count));
        Assert.Equal(0, batcher.PaddedImages);
    }

    [Fact]
    public async Task An_image_that_breaks_the_detector_fails_alone_and_its_batch_mates_get_their_maps()
    {
        var detector = new StandIn();
        await using var batcher = new DetectionBatcher("det", maxBatch: 8, maxBatchPixels: 1 << 24, bucketStep: 128, TimeSpan.Zero, 1, detector.Execute);
        var blocker = batcher.DetectAsync(Planes(32, 32), new float[32 * 32], 32, 32, CancellationToken.None);
        await detector.Started.WaitAsync(Wait);

        var planes = Enumerable.Range(0, 5).Select(i => Planes(64, 32, first: i == 3 ? float.NaN : 0)).ToArray();
        var maps = planes.Select(_ => new float[64 * 32]).ToArray();
        var tasks = planes.Select((p, i) => batcher.DetectAsync(p, maps[i], 64, 32, CancellationToken.None)).ToArray();
        detector.Release();
        await Task.WhenAny(Task.WhenAll(tasks), Task.Delay(Wait));

        var error = await Assert.ThrowsAsync<BatchExecutionException>(() => tasks[3]);
        Assert.Contains("poisoned image", error.Message, StringComparison.Ordinal);
        foreach (var i in new[] { 0, 1, 2, 4 })
        {
            await tasks[i];
            Assert.Equal(planes[i].AsSpan(0, 64 * 32).ToArray(), maps[i]);
        }

        await blocker;
        Assert.Equal(5, detector.Runs[1].Count); // the five ran as one batch first
    }

    [Fact]
    public async Task A_cancelled_image_that_no_batch_took_never_runs()
    {
        var detector = new StandIn();
        await using var batcher = new DetectionBatcher("det", maxBatch: 8, maxBatchPixels: 1 << 24, bucketStep: 128, TimeSpan.Zero, 1, detector.Execute);
        var blocker = batcher.DetectAsync(Planes(32, 32), new float[32 * 32], 32, 32, CancellationToken.None);
        await detector.Started.WaitAsync(Wait);

        using var cts = new CancellationTokenSource();
        var cancelled = batcher.DetectAsync(Planes(64, 64, first: -7), new float[64 * 64], 64, 64, cts.Token);
        var kept = batcher.DetectAsync(Planes(64, 64), new float[64 * 64], 64, 64, CancellationToken.None);
        await cts.CancelAsync();
        detector.Release();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Wait));
        await kept.WaitAsync(Wait);
        await blocker.WaitAsync(Wait);
        Assert.Equal([1, 1], detector.Runs.Select(r => r.Count));
        Assert.DoesNotContain(detector.Runs, r => r.Inputs[0] == -7);
    }

    [Fact]
    public async Task A_lone_image_leaves_after_the_queue_delay()
    {
        var detector = new StandIn();
        detector.Release();
        await using var batcher = new DetectionBatcher("det", maxBatch: 8, maxBatchPixels: 1 << 24, bucketStep: 128, TimeSpan.FromMilliseconds(20), 1, detector.Execute);
        var map = new float[32 * 32];

        await batcher.DetectAsync(Planes(32, 32), map, 32, 32, CancellationToken.None).WaitAsync(Wait);

        Assert.Equal(1f, map[0]);
        Assert.Equal(1, batcher.Batches);
    }

    [Theory]
    [InlineData(8, 6_553_600, 32, true)]
    [InlineData(1, 65_536, 1024, true)]
    [InlineData(0, 6_553_600, 32, false)]
    [InlineData(65, 6_553_600, 32, false)]
    [InlineData(8, 1000, 32, false)]
    [InlineData(8, 6_553_600, 16, false)]
    [InlineData(8, 6_553_600, 100, false)]
    [InlineData(8, 6_553_600, 2048, false)]
    public void The_worker_refuses_detection_batch_settings_out_of_range(int maxBatch, long maxPixels, int step, bool valid)
    {
        var options = new WorkerOptions { OcrDetectionMaxBatch = maxBatch, OcrDetectionMaxBatchPixels = maxPixels, OcrDetectionBucketStep = step };

        Assert.Equal(valid, Validator.TryValidateObject(options, new ValidationContext(options), null, validateAllProperties: true));
    }
}
