using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using Async.Serving.Worker.Batching;

namespace Async.Serving.Worker.Ocr;

/// <summary>
/// Runs the text detector on the images of every OCR job (and video frame) as batches. Each image
/// comes at its own detection size (both sides multiples of 32, as <see cref="OcrModel.DetectionSize(int, int, int, int)"/>
/// makes them); images whose sizes fall in the same bucket (<see cref="Bucket"/>: both sides
/// rounded up to a multiple of <c>bucketStep</c>) run together, in a tensor as wide and as high as
/// the largest of them, each image at the top left and the rest zeros (the normalised tensor
/// padded bottom and right, as PaddleOCR pads); each image's probability map is cut back to its
/// own size. A batch holds at most <c>maxBatch</c> images and, unless one image alone is larger,
/// at most <c>maxBatchPixels</c> padded pixels, which bounds its tensors' memory.
/// </summary>
/// <remarks>
/// With a step of 32 (the worker's default) a bucket holds one size only, and nothing is padded.
/// PP-OCRv4's detector has squeeze-and-excitation blocks, which average each channel over the
/// whole map: padding changes the map of every image it is added to, everywhere, not only near
/// the padded edge (measured on the evaluation images: probabilities moved by up to 1.0, lines were
/// found that were not there alone). Images batched without padding get bitwise the map they get
/// alone. Steps above 32 trade that for fuller batches.
/// <para>
/// Scheduling: a batch leaves when a free detector instance takes it: the oldest waiting image's bucket, with
/// the other images of that bucket that wait, oldest first; it waits up to <c>maxQueueDelay</c>
/// after the oldest image arrived for the bucket to fill, and not at all once the detector was
/// busy long enough. Images of other buckets stay queued for the next batch. A batch whose run
/// throws is split in halves and run again, so one image that breaks the detector fails alone.
/// An image that a batch took is never abandoned: a cancelled caller waits for its batch (at most
/// one detector run), so the batch never writes into a buffer the caller has given back.
/// </para>
/// </remarks>
internal sealed class DetectionBatcher : IAsyncDisposable
{
    /// <summary>
    /// Runs the detector on <paramref name="count"/> images laid end to end in <paramref name="inputs"/>
    /// (normalised planes, [count, 3, height, width]); writes their [count, height, width] probability maps.
    /// </summary>
    public delegate void DetectorExecutor(Memory<float> inputs, int count, int width, int height, Span<float> maps);

    private const int Queued = 0, Taken = 1, Cancelled = 2;

    private readonly Channel<Request> _queue;
    private readonly DetectorExecutor _execute;
    private readonly int _maxBatch;
    private readonly int _bucketStep;
    private readonly long _maxBatchPixels;
    private readonly TimeSpan _maxQueueDelay;
    private readonly SemaphoreSlim _free;
    private readonly Task _loop;
    private long _batches;
    private long _items;
    private long _padded;

    public DetectionBatcher(
        string name, int maxBatch, long maxBatchPixels, int bucketStep, TimeSpan maxQueueDelay, int instances, DetectorExecutor execute)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketStep, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchPixels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(instances, 1);
        Name = name;
        _maxBatch = maxBatch;
        _bucketStep = bucketStep;
        _maxBatchPixels = maxBatchPixels;
        _maxQueueDelay = maxQueueDelay;
        _execute = execute;
        _free = new SemaphoreSlim(instances, instances);
        _queue = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions
        {
            SingleReader = true,
            SingleWriter = false,
            AllowSynchronousContinuations = false,
        });
        _loop = Task.Run(RunAsync);
    }

    public string Name { get; }

    /// <summary>Detector runs so far.</summary>
    public long Batches => Interlocked.Read(ref _batches);

    /// <summary>Images detected so far (a failed run counts when its halves run).</summary>
    public long Items => Interlocked.Read(ref _items);

    /// <summary>Images that ran padded, in a batch with a wider or higher image of their bucket.</summary>
    public long PaddedImages => Interlocked.Read(ref _padded);

    /// <summary>Raised after each detector run with its image count, its tensor's width and height, and how long the model took.</summary>
    public event Action<int, int, int, TimeSpan>? BatchExecuted;

    /// <summary>The bucket of an image of <paramref name="width"/>×<paramref name="height"/> detector pixels: both sides rounded up to a multiple of the bucket step.</summary>
    public (int Width, int Height) Bucket(int width, int height) => (RoundUp(width), RoundUp(height));

    /// <summary>Images of one bucket in one run: <c>maxBatch</c>, fewer when they would pass <c>maxBatchPixels</c> at the bucket's size, and at least one.</summary>
    public int BatchLimit((int Width, int Height) bucket) =>
        (int)Math.Clamp(_maxBatchPixels / ((long)bucket.Width * bucket.Height), 1, _maxBatch);

    /// <summary>
    /// Detects one image: <paramref name="planes"/> holds its normalised [3, height, width] planes,
    /// <paramref name="map"/> receives its [height, width] probability map. The caller keeps both
    /// buffers and must not touch them until the returned task completes.
    /// </summary>
    public Task DetectAsync(float[] planes, float[] map, int width, int height, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        var length = width * height;
        if (planes.Length < 3 * length || map.Length < length)
        {
            throw new ArgumentException($"A {width}×{height} image needs {3 * length} input and {length} output values.", nameof(planes));
        }

        cancellationToken.ThrowIfCancellationRequested();
        var request = new Request(planes, map, width, height, Bucket(width, height), Stopwatch.GetTimestamp());
        if (!_queue.Writer.TryWrite(request))
        {
            throw new ObjectDisposedException(Name, "The detection batcher is stopped.");
        }

        return cancellationToken.CanBeCanceled ? CancellableAsync(request, cancellationToken) : request.Completion.Task;
    }

    /// <summary>
    /// Only an image no batch has taken yet is let go on a cancel; one in a running batch finishes with
    /// it. The registration is disposed by the continuation that hands the result on (as in <see cref="Batching.DynamicBatcher"/>).
    /// </summary>
    private static async Task CancellableAsync(Request request, CancellationToken cancellationToken)
    {
        using var registration = cancellationToken.Register(static state =>
        {
            var (r, token) = ((Request, CancellationToken))state!;
            if (Interlocked.CompareExchange(ref r.State, Cancelled, Queued) == Queued)
            {
                r.Completion.TrySetCanceled(token);
            }
        }, (request, cancellationToken));
        await request.Completion.Task.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
        _free.Dispose();
    }

    private int RoundUp(int side) => (side + _bucketStep - 1) / _bucketStep * _bucketStep;

    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        var waiting = new List<Request>();
        var running = new List<Task>();
        while (waiting.Count > 0 || await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            // A free detector instance first: while the detector is busy, images gather for the next batch.
            await _free.WaitAsync().ConfigureAwait(false);
            var batch = await CollectAsync(reader, waiting).ConfigureAwait(false);
            if (batch.Count == 0)
            {
                _free.Release();
                continue;
            }

            running.RemoveAll(t => t.IsCompleted);
            running.Add(Task.Run(() =>
            {
                try
                {
                    Execute(batch, 0, batch.Count);
                }
                finally
                {
                    _free.Release();
                }
            }));
        }

        await Task.WhenAll(running).ConfigureAwait(false);
    }

    /// <summary>The next batch: the oldest waiting image's bucket, filled from the queue or until the oldest has waited the delay. Its images are taken.</summary>
    private async Task<List<Request>> CollectAsync(ChannelReader<Request> reader, List<Request> waiting)
    {
        while (true)
        {
            while (reader.TryRead(out var request))
            {
                waiting.Add(request);
            }

            waiting.RemoveAll(r => Volatile.Read(ref r.State) != Queued);
            if (waiting.Count == 0)
            {
                return [];
            }

            var oldest = waiting[0];
            var limit = BatchLimit(oldest.Bucket);
            var mates = waiting.Count(r => r.Bucket == oldest.Bucket);
            var remaining = _maxQueueDelay - Stopwatch.GetElapsedTime(oldest.EnqueuedAt);
            if (mates < limit && remaining > TimeSpan.Zero)
            {
                using var timer = new CancellationTokenSource(remaining);
                try
                {
                    if (await reader.WaitToReadAsync(timer.Token).ConfigureAwait(false))
                    {
                        continue;
                    }
                }
                catch (OperationCanceledException) when (timer.IsCancellationRequested)
                {
                }
            }

            var batch = new List<Request>(Math.Min(limit, mates));
            foreach (var request in waiting)
            {
                if (batch.Count == limit)
                {
                    break;
                }

                if (request.Bucket == oldest.Bucket && Interlocked.CompareExchange(ref request.State, Taken, Queued) == Queued)
                {
                    batch.Add(request);
                }
            }

            waiting.RemoveAll(r => Volatile.Read(ref r.State) != Queued);
            if (batch.Count > 0)
            {
                return batch;
            }
        }
    }

    private void Execute(List<Request> batch, int start, int count)
    {
        var width = 0;
        var height = 0;
        for (var i = start; i < start + count; i++)
        {
            width = Math.Max(width, batch[i].Width);
            height = Math.Max(height, batch[i].Height);
        }

        var plane = width * height;
        // An image alone runs from its own buffers; a batch is copied into one tensor, its maps out of one.
        var inputs = count == 1 ? batch[start].Planes : ArrayPool<float>.Shared.Rent(count * 3 * plane);
        var maps = count == 1 ? batch[start].Map : ArrayPool<float>.Shared.Rent(count * plane);
        try
        {
            var padded = 0;
            for (var i = 0; i < count && count > 1; i++)
            {
                var request = batch[start + i];
                padded += request.Width != width || request.Height != height ? 1 : 0;
                Pad(request, inputs.AsSpan(i * 3 * plane, 3 * plane), width, height);
            }

            var began = Stopwatch.GetTimestamp();
            _execute(inputs.AsMemory(0, count * 3 * plane), count, width, height, maps.AsSpan(0, count * plane));
            var elapsed = Stopwatch.GetElapsedTime(began);
            Interlocked.Increment(ref _batches);
            Interlocked.Add(ref _items, count);
            Interlocked.Add(ref _padded, padded);
            BatchExecuted?.Invoke(count, width, height, elapsed);

            for (var i = 0; i < count; i++)
            {
                var request = batch[start + i];
                if (count > 1)
                {
                    Crop(maps.AsSpan(i * plane, plane), width, request.Map.AsSpan(0, request.Width * request.Height), request.Width, request.Height);
                }

                request.Completion.TrySetResult();
            }
        }
        catch (Exception) when (count > 1)
        {
            // Bisect: the images batched with one that breaks the detector still get their maps.
            var half = count / 2;
            Execute(batch, start, half);
            Execute(batch, start + half, count - half);
        }
        catch (Exception ex)
        {
            batch[start].Completion.TrySetException(new BatchExecutionException(Name, ex));
        }
        finally
        {
            if (count > 1)
            {
                ArrayPool<float>.Shared.Return(inputs);
                ArrayPool<float>.Shared.Return(maps);
            }
        }
    }

    /// <summary>An image's planes at the top left of a <paramref name="width"/>×<paramref name="height"/> slot, zeros to its right and below.</summary>
    private static void Pad(Request request, Span<float> slot, int width, int height)
    {
        var (w, h) = (request.Width, request.Height);
        if (w == width && h == height)
        {
            request.Planes.AsSpan(0, 3 * w * h).CopyTo(slot);
            return;
        }

        slot.Clear();
        for (var c = 0; c < 3; c++)
        {
            for (var y = 0; y < h; y++)
            {
                request.Planes.AsSpan((((c * h) + y) * w), w).CopyTo(slot.Slice(((c * height) + y) * width, w));
            }
        }
    }

    /// <summary>The top-left <paramref name="w"/>×<paramref name="h"/> of a <paramref name="width"/>-wide map.</summary>
    private static void Crop(ReadOnlySpan<float> map, int width, Span<float> destination, int w, int h)
    {
        if (w == width)
        {
            map[..(w * h)].CopyTo(destination);
            return;
        }

        for (var y = 0; y < h; y++)
        {
            map.Slice(y * width, w).CopyTo(destination.Slice(y * w, w));
        }
    }

    private sealed class Request(float[] planes, float[] map, int width, int height, (int Width, int Height) bucket, long enqueuedAt)
    {
        public int State;

        public float[] Planes { get; } = planes;

        public float[] Map { get; } = map;

        public int Width { get; } = width;

        public int Height { get; } = height;

        public (int Width, int Height) Bucket { get; } = bucket;

        public long EnqueuedAt { get; } = enqueuedAt;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
