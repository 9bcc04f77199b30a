using Async.Serving.Worker.Priorities;

namespace Async.Serving.UnitTests;

/// <summary>
/// The worker's shared in-flight gate per model: grants by lane in the 8 : 3 : 1 weighted order. A
/// grant completes its waiter's task inside <c>Dispose</c> of the freed slot, so after each release
/// exactly one waiter has its slot, and the order is read without waiting on anything.
/// </summary>
public sealed class PriorityGateTests
{
    private sealed record Waiter(string Priority, int Index, Task<IDisposable> Slot);

    /// <summary>Queues <paramref name="count"/> waiters per priority, in the order given.</summary>
    private static List<Waiter> Queue(PriorityGate gate, int count, params string[] priorities)
    {
        var waiters = new List<Waiter>();
        foreach (var priority in priorities)
        {
            for (var i = 0; i < count; i++)
            {
                waiters.Add(new Waiter(priority, i, gate.AcquireAsync(priority, CancellationToken.None).AsTask()));
            }
        }

        Assert.All(waiters, w => Assert.False(w.Slot.IsCompleted));
        return waiters;
    }

    /// <summary>Frees the held slot <paramref name="grants"/> times, each time passing it on to the one waiter that got it; the order they got it in.</summary>
    private static List<Waiter> Grants(IDisposable held, List<Waiter> waiters, int grants)
    {
        var order = new List<Waiter>();
        for (var i = 0; i < grants; i++)
        {
            held.Dispose();
            var granted = Assert.Single(waiters, w => w.Slot.IsCompletedSuccessfully && !order.Contains(w));
            order.Add(granted);
            held = granted.Slot.Result;
        }

        return order;
    }

    [Fact]
    public async Task With_every_lane_waiting_twelve_grants_go_eight_high_three_normal_one_low_high_first_and_each_lane_in_arrival_order()
    {
        var gate = new PriorityGate(1);
        var held = await gate.AcquireAsync(JobPriorities.Low, CancellationToken.None);
        // Low arrived first, high last: arrival across lanes does not decide.
        var waiters = Queue(gate, 24, JobPriorities.Low, JobPriorities.Normal, JobPriorities.High);

        var first = Grants(held, waiters, 24);

        Assert.Equal(JobPriorities.High, first[0].Priority);
        foreach (var round in first.Chunk(12))
        {
            Assert.Equal(8, round.Count(w => w.Priority == JobPriorities.High));
            Assert.Equal(3, round.Count(w => w.Priority == JobPriorities.Normal));
            Assert.Equal(1, round.Count(w => w.Priority == JobPriorities.Low));
        }

        // Interleaved, not eight highs in a row before the others.
        Assert.Contains(first.Take(4), w => w.Priority != JobPriorities.High);
        foreach (var lane in first.GroupBy(w => w.Priority))
        {
            Assert.Equal(lane.Select(w => w.Index).Order(), lane.Select(w => w.Index));
        }
    }

    [Fact]
    public async Task Low_still_progresses_under_a_backlog_of_high_jobs()
    {
        var gate = new PriorityGate(1);
        var held = await gate.AcquireAsync(JobPriorities.High, CancellationToken.None);
        var waiters = Queue(gate, 100, JobPriorities.High);
        waiters.AddRange(Queue(gate, 3, JobPriorities.Low));

        var order = Grants(held, waiters, 27);

        // High and low waiting alone share 8 : 1: every ninth grant is low's.
        Assert.Equal(3, order.Count(w => w.Priority == JobPriorities.Low));
        Assert.Equal(24, order.Count(w => w.Priority == JobPriorities.High));
        Assert.Equal(76, gate.Waiting(JobPriorities.High));
    }

    [Fact]
    public async Task A_free_slot_is_taken_at_once_whatever_the_priority_and_a_lone_lane_gets_every_grant()
    {
        var gate = new PriorityGate(2);
        var a = gate.AcquireAsync(JobPriorities.Low, CancellationToken.None);
        var b = gate.AcquireAsync(JobPriorities.Low, CancellationToken.None);
        Assert.True(a.IsCompletedSuccessfully && b.IsCompletedSuccessfully);
        Assert.Equal(2, gate.InUse);

        var waiters = Queue(gate, 5, JobPriorities.Low);
        var order = Grants(await a, waiters, 5);
        Assert.Equal(Enumerable.Range(0, 5), order.Select(w => w.Index));
    }

    [Fact]
    public async Task A_cancelled_wait_leaves_its_lane_and_its_turn_goes_to_the_next()
    {
        var gate = new PriorityGate(1);
        var held = await gate.AcquireAsync(JobPriorities.Normal, CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var abandoned = gate.AcquireAsync(JobPriorities.High, cancel.Token).AsTask();
        var low = gate.AcquireAsync(JobPriorities.Low, CancellationToken.None).AsTask();
        Assert.Equal(1, gate.Waiting(JobPriorities.High));

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        Assert.Equal(0, gate.Waiting(JobPriorities.High));

        held.Dispose();
        Assert.True(low.IsCompletedSuccessfully);
        (await low).Dispose();
        Assert.Equal(0, gate.InUse);
    }

    [Fact]
    public async Task A_slot_released_twice_counts_once_and_an_unknown_priority_waits_as_normal()
    {
        var gate = new PriorityGate(1);
        var held = await gate.AcquireAsync("urgent", CancellationToken.None);
        var next = gate.AcquireAsync("urgent", CancellationToken.None).AsTask();
        Assert.Equal(1, gate.Waiting(JobPriorities.Normal));

        held.Dispose();
        held.Dispose();
        Assert.True(next.IsCompletedSuccessfully);
        Assert.Equal(1, gate.InUse);
    }
}
