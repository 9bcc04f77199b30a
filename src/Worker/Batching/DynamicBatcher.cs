using System.Diagnostics;
using System.Threading.Channels;
using Async.Serving.Hosting;

namespace Async.Serving.Worker.Batching;

/// <summary>
/// Runs one model's inference requests, from any job, as batches: a batch leaves when it holds
/// <c>maxBatchSize</c> items or when its oldest item has waited <c>maxQueueDelay</c>. A request
/// whose token is cancelled before it joins a batch is dropped (its task is cancelled). A batch
/// whose execution throws is split in halves and retried, so one poisoned input fails alone.
/// Each batch is a <c>model.batch</c> span: a child of its oldest item's span (the job that opened
/// the batch), linked to the span of every item in it, and each item's span (the job's
/// <c>job.inference</c>) gets a <c>model.batch</c> event naming the batch's span, so a job whose
/// items rode in another job's batch still finds it from its own trace.
/// </summary>
public sealed class DynamicBatcher : IAsyncDisposable
{
    /// <summary>Runs <paramref name="count"/> items laid end to end in <paramref name="inputs"/>; writes as many outputs.</summary>
    public delegate void BatchExecutor(Memory<float> inputs, int count, Span<float> outputs);

    private readonly Channel<Request> _queue;
    private readonly BatchExecutor _execute;
    private readonly int _maxBatchSize;
    private readonly TimeSpan _maxQueueDelay;
    private readonly Task[] _loops;
    private long _batches;
    private long _items;

    public DynamicBatcher(
        string name, int inputLength, int outputLength, int maxBatchSize, TimeSpan maxQueueDelay, int instances, BatchExecutor execute)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(instances, 1);
        Name = name;
        InputLength = inputLength;
        OutputLength = outputLength;
        _maxBatchSize = maxBatchSize;
        _maxQueueDelay = maxQueueDelay;
        _execute = execute;
        _queue = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions
        {
            SingleReader = instances == 1,
            SingleWriter = false,
            AllowSynchronousContinuations = false,
        });
        _loops = new Task[instances];
        for (var i = 0; i < instances; i++)
        {
            _loops[i] = Task.Factory.StartNew(RunAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        }
    }

    public string Name { get; }

    public int InputLength { get; }

    public int OutputLength { get; }

    public long Batches => Interlocked.Read(ref _batches);

    public long Items => Interlocked.Read(ref _items);

    /// <summary>Raised after each executed batch with its size and how long the model took.</summary>
    public event Action<int, TimeSpan>? BatchExecuted;

    /// <summary>
    /// Raised when a batch gave no item a result: the model threw for the whole batch and for every
    /// item run alone after the split. The model, not an input, is failing (see the model breakers).
    /// </summary>
    public event Action<Exception>? BatchFailed;

    /// <summary>
    /// Queues one item. The caller keeps ownership of <paramref name="input"/>; the batcher reads it
    /// until the returned task completes (a cancelled item may still be read by a batch already
    /// running, and its values then land only in a discarded result).
    /// </summary>
    public Task<float[]> InferAsync(float[] input, CancellationToken cancellationToken)
    {
        if (input.Length < InputLength)
        {
            throw new ArgumentException($"Input holds {input.Length} values; the model takes {InputLength}.", nameof(input));
        }

        var request = new Request(input, cancellationToken, Stopwatch.GetTimestamp(), Activity.Current);
        if (!_queue.Writer.TryWrite(request))
        {
            throw new ObjectDisposedException(Name, "The batcher is stopped.");
        }

        return cancellationToken.CanBeCanceled ? CancellableAsync(request, cancellationToken) : request.Completion.Task;
    }

    /// <summary>
    /// A cancel while the item waits for its batch to fill ends the wait at once; the batch then
    /// leaves the item out (see Execute). Once its batch runs, the result is simply discarded. The
    /// registration is disposed by the continuation that hands the result on, not by a second one
    /// of its own (a thread pool work item per job fewer: docs/benchmarks.md, "Fifth round").
    /// </summary>
    private static async Task<float[]> CancellableAsync(Request request, CancellationToken cancellationToken)
    {
        using var registration = cancellationToken.Register(static state => ((Request)state!).Completion.TrySetCanceled(), request);
        return await request.Completion.Task.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await Task.WhenAll(_loops).ConfigureAwait(false);
    }

    private async Task RunAsync()
    {
        var batch = new List<Request>(_maxBatchSize);
        var inputs = new float[_maxBatchSize * InputLength];
        var outputs = new float[_maxBatchSize * OutputLength];
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            await CollectAsync(reader, batch).ConfigureAwait(false);
            // Items cancelled while the batch filled never enter it.
            batch.RemoveAll(r => r.Completion.Task.IsCompleted);
            if (batch.Count > 0 && Execute(batch, 0, batch.Count, inputs, outputs) is { } failure)
            {
                BatchFailed?.Invoke(failure);
            }
        }
    }

    private async Task CollectAsync(ChannelReader<Request> reader, List<Request> batch)
    {
        long oldest = 0;
        while (batch.Count < _maxBatchSize)
        {
            while (batch.Count < _maxBatchSize && reader.TryRead(out var request))
            {
                if (request.Cancellation.IsCancellationRequested)
                {
                    request.Completion.TrySetCanceled(request.Cancellation);
                    continue;
                }

                if (batch.Count == 0)
                {
                    oldest = request.EnqueuedAt;
                }

                batch.Add(request);
            }

            if (batch.Count == 0 || batch.Count >= _maxBatchSize)
            {
                return;
            }

            var remaining = _maxQueueDelay - Stopwatch.GetElapsedTime(oldest);
            if (remaining <= TimeSpan.Zero)
            {
                return;
            }

            // The batch's queue delay ending is the usual way out of this wait (several times a second
            // under load): awaited without throwing, as an exception per batch costs more than the batch's bookkeeping.
            using var timer = new CancellationTokenSource(remaining);
            Task<bool> wait = reader.WaitToReadAsync(timer.Token).AsTask();
            await ((Task)wait).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (!wait.IsCompletedSuccessfully || !wait.Result)
            {
                if (wait.IsFaulted)
                {
                    await wait.ConfigureAwait(false); // a fault of the channel itself: rethrown as before
                }

                return;
            }
        }
    }

    /// <summary>Runs the items, splitting on failure; returns null when any item got a result, else the last failure.</summary>
    private Exception? Execute(List<Request> batch, int start, int count, float[] inputs, float[] outputs)
    {
        using var activity = StartBatchActivity(batch, start, count);
        try
        {
            for (var i = 0; i < count; i++)
            {
                batch[start + i].Input.AsSpan(0, InputLength).CopyTo(inputs.AsSpan(i * InputLength, InputLength));
            }

            var began = Stopwatch.GetTimestamp();
            _execute(inputs.AsMemory(0, count * InputLength), count, outputs.AsSpan(0, count * OutputLength));
            var elapsed = Stopwatch.GetElapsedTime(began);
            Interlocked.Increment(ref _batches);
            Interlocked.Add(ref _items, count);
            BatchExecuted?.Invoke(count, elapsed);

            for (var i = 0; i < count; i++)
            {
                batch[start + i].Completion.TrySetResult(outputs.AsSpan(i * OutputLength, OutputLength).ToArray());
            }

            return null;
        }
        catch (Exception) when (count > 1)
        {
            // Bisect: the neighbours of a poisoned input still get their results.
            var half = count / 2;
            var first = Execute(batch, start, half, inputs, outputs);
            var second = Execute(batch, start + half, count - half, inputs, outputs);
            return first is null || second is null ? null : second;
        }
        catch (Exception ex)
        {
            activity.Fail(ex);
            batch[start].Completion.TrySetException(new BatchExecutionException(Name, ex));
            return ex;
        }
    }

    /// <summary>
    /// The batch's span; the halves of a batch that failed are children of its span. Null when nobody
    /// listens, or when no item came with a span (a benchmark, a test without telemetry).
    /// </summary>
    private Activity? StartBatchActivity(List<Request> batch, int start, int count)
    {
        if (!ServingTelemetry.Source.HasListeners())
        {
            return null;
        }

        var links = new List<ActivityLink>(count);
        var seen = new HashSet<ActivitySpanId>();
        for (var i = start; i < start + count; i++)
        {
            if (batch[i].Caller is { } caller && seen.Add(caller.SpanId))
            {
                links.Add(new ActivityLink(caller.Context));
            }
        }

        if (links.Count == 0)
        {
            return null;
        }

        var parent = Activity.Current is { OperationName: BatchSpan } outer && outer.Source == ServingTelemetry.Source ? outer.Context : links[0].Context;
        var activity = ServingTelemetry.Source.StartActivity(BatchSpan, ActivityKind.Internal, parent, links: links);
        if (activity is null)
        {
            return null;
        }

        activity.SetTag(ServingTelemetry.ModelTag, Name);
        activity.SetTag(ServingTelemetry.BatchSizeTag, count);
        activity.SetTag("serving.batch.wait_ms", (long)Stopwatch.GetElapsedTime(batch[start].EnqueuedAt).TotalMilliseconds);
        var joined = new ActivityEvent(BatchSpan, tags: new ActivityTagsCollection
        {
            ["serving.batch.trace_id"] = activity.TraceId.ToHexString(),
            ["serving.batch.span_id"] = activity.SpanId.ToHexString(),
            [ServingTelemetry.BatchSizeTag] = count,
        });
        seen.Clear();
        for (var i = start; i < start + count; i++)
        {
            if (batch[i].Caller is { IsStopped: false } caller && seen.Add(caller.SpanId))
            {
                caller.AddEvent(joined);
            }
        }

        return activity;
    }

    private const string BatchSpan = "model.batch";

    /// <param name="Caller">The span the item was queued from (the job's inference), or null.</param>
    private sealed record Request(float[] Input, CancellationToken Cancellation, long EnqueuedAt, Activity? Caller)
    {
        public TaskCompletionSource<float[]> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>The model failed on this item even when it ran alone.</summary>
public sealed class BatchExecutionException(string model, Exception inner)
    : Exception($"Model {model} failed on this input: {inner.Message}", inner);
