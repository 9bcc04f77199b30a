using System.Collections.Concurrent;
using System.Diagnostics;
using Async.Serving.Hosting;
using Async.Serving.Worker.Batching;

namespace Async.Serving.UnitTests;

public sealed class DynamicBatcherTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    // A "model" that doubles each input value; an item whose first value is NaN poisons its whole batch.
    private static void Double(Memory<float> inputs, int count, Span<float> outputs)
    {
        var span = inputs.Span;
        for (var i = 0; i < count; i++)
        {
            if (float.IsNaN(span[i * 2]))
            {
                throw new InvalidOperationException("poisoned item");
            }
        }

        for (var i = 0; i < span.Length; i++)
        {
            outputs[i] = span[i] * 2;
        }
    }

    [Fact]
    public async Task Requests_queued_together_run_as_one_full_batch()
    {
        var sizes = new List<int>();
        await using var batcher = new DynamicBatcher("m", 2, 2, maxBatchSize: 4, TimeSpan.FromSeconds(5), 1, Double);
        batcher.BatchExecuted += (n, _) => { lock (sizes) { sizes.Add(n); } };

        // The delay is long: only a full batch can leave this quickly.
        var results = await Task.WhenAll(Enumerable.Range(1, 4).Select(v => batcher.InferAsync([v, v], CancellationToken.None))).WaitAsync(Wait);

        Assert.Equal([2f, 2f], results[0]);
        Assert.Equal([8f, 8f], results[3]);
        Assert.Equal([4], sizes);
    }

    [Fact]
    public async Task A_lone_request_leaves_after_the_queue_delay()
    {
        await using var batcher = new DynamicBatcher("m", 2, 2, maxBatchSize: 8, TimeSpan.FromMilliseconds(20), 1, Double);
        var result = await batcher.InferAsync([3, 4], CancellationToken.None).WaitAsync(Wait);
        Assert.Equal([6f, 8f], result);
        Assert.Equal(1, batcher.Batches);
    }

    [Fact]
    public async Task A_cancelled_request_never_enters_a_batch()
    {
        var seen = new List<float>();
        var gate = new ManualResetEventSlim(false);
        var executing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var batcher = new DynamicBatcher("m", 2, 2, maxBatchSize: 4, TimeSpan.FromMilliseconds(50), 1, (i, n, o) =>
        {
            executing.TrySetResult();
            gate.Wait(Wait);
            lock (seen) { seen.AddRange(i.Span.ToArray()); }
            Double(i, n, o);
        });

        // The blocker's batch holds the only instance; the next two requests queue behind it.
        var blocker = batcher.InferAsync([0, 0], CancellationToken.None);
        await executing.Task.WaitAsync(Wait);
        using var cts = new CancellationTokenSource();
        var cancelled = batcher.InferAsync([7, 7], cts.Token);
        var kept = batcher.InferAsync([9, 9], CancellationToken.None);
        await cts.CancelAsync();
        gate.Set();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Wait));
        var keptResult = await kept.WaitAsync(Wait);
        Assert.Equal([18f, 18f], keptResult);
        await blocker.WaitAsync(Wait);
        Assert.DoesNotContain(7f, seen);
    }

    [Fact]
    public async Task A_poisoned_input_fails_alone_and_its_batch_mates_succeed()
    {
        var gate = new ManualResetEventSlim(false);
        var executing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var batcher = new DynamicBatcher("m", 2, 2, maxBatchSize: 8, TimeSpan.FromMilliseconds(200), 1, (i, n, o) =>
        {
            executing.TrySetResult();
            gate.Wait(Wait);
            Double(i, n, o);
        });

        var blocker = batcher.InferAsync([0, 0], CancellationToken.None);
        await executing.Task.WaitAsync(Wait);
        var good = Enumerable.Range(1, 5).Select(v => batcher.InferAsync([v, v], CancellationToken.None)).ToList();
        var bad = batcher.InferAsync([float.NaN, 0], CancellationToken.None);
        good.Add(batcher.InferAsync([6, 6], CancellationToken.None));
        gate.Set();

        var results = await Task.WhenAll(good).WaitAsync(Wait);
        Assert.Equal(Enumerable.Range(1, 6).Select(v => 2f * v), results.Select(r => r[0]));
        var error = await Assert.ThrowsAsync<BatchExecutionException>(() => bad.WaitAsync(Wait));
        Assert.Contains("poisoned item", error.Message, StringComparison.Ordinal);
        await blocker.WaitAsync(Wait);
    }

    [Fact]
    public async Task No_batch_exceeds_the_maximum_size()
    {
        var largest = 0;
        await using var batcher = new DynamicBatcher("m", 2, 2, maxBatchSize: 3, TimeSpan.FromMilliseconds(30), 2, (i, n, o) =>
        {
            InterlockedMax(ref largest, n);
            Thread.Sleep(5);
            Double(i, n, o);
        });

        var all = Enumerable.Range(0, 50).Select(v => batcher.InferAsync([v, v], CancellationToken.None)).ToArray();
        var results = await Task.WhenAll(all).WaitAsync(Wait);
        Assert.Equal(Enumerable.Range(0, 50).Select(v => 2f * v), results.Select(r => r[1]));
        Assert.InRange(largest, 2, 3);
        Assert.Equal(50, batcher.Items);
    }

    [Fact]
    public async Task A_batch_is_a_span_under_its_oldest_job_linked_to_every_job_in_it()
    {
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is ServingTelemetry.SourceName or "test-jobs",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        using var jobs = new ActivitySource("test-jobs");
        await using var batcher = new DynamicBatcher("m", 2, 2, maxBatchSize: 3, TimeSpan.FromSeconds(5), 1, Double);

        // Two jobs, each its own trace: the first queues two items (as OCR crops do), the second one.
        Activity.Current = null;
        using var first = jobs.StartActivity("job first")!;
        var items = new List<Task<float[]>> { batcher.InferAsync([1, 1], CancellationToken.None), batcher.InferAsync([2, 2], CancellationToken.None) };
        Activity.Current = null;
        using var second = jobs.StartActivity("job second")!;
        items.Add(batcher.InferAsync([3, 3], CancellationToken.None));
        Activity.Current = null;
        await Task.WhenAll(items).WaitAsync(Wait);
        // The items' results are handed out inside the batch's span: it stops just after, on the batch loop's thread.
        var deadline = DateTime.UtcNow + Wait;
        while (!stopped.Any(a => a.OperationName == "model.batch") && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        var batch = Assert.Single(stopped, a => a.OperationName == "model.batch" && a.Links.Any(l => l.Context.SpanId == first.SpanId));
        Assert.Equal((first.TraceId, first.SpanId), (batch.TraceId, batch.ParentSpanId));
        Assert.Equal([first.SpanId, second.SpanId], batch.Links.Select(l => l.Context.SpanId));
        Assert.Equal(second.TraceId, batch.Links.ElementAt(1).Context.TraceId);
        Assert.Equal(3, batch.GetTagItem(ServingTelemetry.BatchSizeTag));
        foreach (var job in new[] { first, second })
        {
            var joined = Assert.Single(job.Events, e => e.Name == "model.batch");
            Assert.Equal(batch.SpanId.ToHexString(), joined.Tags.Single(t => t.Key == "serving.batch.span_id").Value);
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while (value > (current = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
