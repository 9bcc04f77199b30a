namespace Async.Serving.Worker.Priorities;

/// <summary>
/// The in-flight limit of one model, shared by the consumers of its priority lanes (one receive
/// endpoint per lane, see <see cref="Messaging.JobQueues"/>). A job holds a slot from before it
/// starts until it ends. While a slot is free it is taken at once; when none is, jobs wait here by
/// lane, and each freed slot goes to a waiting lane chosen by smooth weighted round-robin over the
/// lanes that have waiters: with high, normal and low all waiting the grants come 8 : 3 : 1
/// (<see cref="DefaultWeights"/>), interleaved (never eight highs then a low), so high is taken first
/// and low still progresses under any high backlog. A lane without waiters takes no share: a lone
/// lane gets every slot. Within a lane, first come first served.
/// </summary>
/// <remarks>
/// Smooth weighted round-robin (as nginx balances upstreams): at each grant every waiting lane adds
/// its weight to its credit, the lane with the most credit wins (ties to the higher priority) and pays
/// the sum of the waiting lanes' weights. Over any run of grants with the same lanes waiting, each
/// lane's share is its weight's share, within one grant. A lane that runs dry loses its credit.
/// </remarks>
internal sealed class PriorityGate
{
    /// <summary>Grants per round when every lane waits: high 8, normal 3, low 1.</summary>
    public static readonly IReadOnlyDictionary<string, int> DefaultWeights =
        new Dictionary<string, int> { [JobPriorities.High] = 8, [JobPriorities.Normal] = 3, [JobPriorities.Low] = 1 };

    private readonly object _lock = new();
    private readonly Lane[] _lanes;
    private int _free;

    public PriorityGate(int slots, IReadOnlyDictionary<string, int>? weights = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        weights ??= DefaultWeights;
        Slots = slots;
        _free = slots;
        _lanes = [.. JobPriorities.All.Select(p => new Lane(p, weights.TryGetValue(p, out var w) && w > 0 ? w : throw new ArgumentException($"No positive weight for {p}.", nameof(weights))))];
    }

    public int Slots { get; }

    /// <summary>Jobs waiting for a slot, in <paramref name="priority"/>'s lane.</summary>
    public int Waiting(string priority)
    {
        lock (_lock)
        {
            return LaneOf(priority).Waiters.Count;
        }
    }

    /// <summary>Slots held now.</summary>
    public int InUse
    {
        get
        {
            lock (_lock)
            {
                return Slots - _free;
            }
        }
    }

    /// <summary>
    /// A slot for a job of <paramref name="priority"/> (an unknown one waits as normal); dispose it
    /// when the job ends. Cancelling gives up the wait; a slot already granted is still returned.
    /// </summary>
    public ValueTask<IDisposable> AcquireAsync(string priority, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Waiter waiter;
        lock (_lock)
        {
            if (_free > 0)
            {
                _free--;
                return ValueTask.FromResult<IDisposable>(new Slot(this));
            }

            var lane = LaneOf(priority);
            waiter = new Waiter(this, lane);
            waiter.Node = lane.Waiters.AddLast(waiter);
        }

        // Registered outside the lock: a token cancelled meanwhile runs Abandon right here.
        waiter.Registration = cancellationToken.UnsafeRegister(static state => ((Waiter)state!).Gate.Abandon((Waiter)state), waiter);
        return new ValueTask<IDisposable>(waiter.Granted.Task);
    }

    /// <summary>A cancelled wait leaves its lane, unless its slot was granted meanwhile (the caller gets that slot).</summary>
    private void Abandon(Waiter waiter)
    {
        lock (_lock)
        {
            if (waiter.Node?.List is null)
            {
                return; // granted already
            }

            waiter.Lane.Waiters.Remove(waiter.Node);
            waiter.Node = null;
            if (waiter.Lane.Waiters.Count == 0)
            {
                waiter.Lane.Credit = 0;
            }
        }

        waiter.Granted.TrySetCanceled();
    }

    private void Release()
    {
        Waiter? next;
        lock (_lock)
        {
            next = NextWaiter();
            if (next is null)
            {
                _free++;
                return;
            }
        }

        next.Registration.Unregister();
        next.Granted.TrySetResult(new Slot(this));
    }

    /// <summary>The waiter the freed slot goes to (removed from its lane), by smooth weighted round-robin; null when none waits. Under the lock.</summary>
    private Waiter? NextWaiter()
    {
        Lane? chosen = null;
        var total = 0;
        foreach (var lane in _lanes)
        {
            if (lane.Waiters.Count == 0)
            {
                continue;
            }

            lane.Credit += lane.Weight;
            total += lane.Weight;
            if (chosen is null || lane.Credit > chosen.Credit)
            {
                chosen = lane; // lanes are highest first: a tie stays with the higher priority
            }
        }

        if (chosen is null)
        {
            return null;
        }

        chosen.Credit -= total;
        var waiter = chosen.Waiters.First!.Value;
        chosen.Waiters.RemoveFirst();
        waiter.Node = null;
        if (chosen.Waiters.Count == 0)
        {
            chosen.Credit = 0;
        }

        return waiter;
    }

    private Lane LaneOf(string priority) => _lanes.FirstOrDefault(l => l.Priority == priority) ?? _lanes.First(l => l.Priority == JobPriorities.Normal);

    private sealed class Lane(string priority, int weight)
    {
        public string Priority { get; } = priority;
        public int Weight { get; } = weight;
        public int Credit { get; set; }
        public LinkedList<Waiter> Waiters { get; } = new();
    }

    private sealed class Waiter(PriorityGate gate, Lane lane)
    {
        public PriorityGate Gate { get; } = gate;
        public Lane Lane { get; } = lane;
        public CancellationTokenRegistration Registration { get; set; }
        public LinkedListNode<Waiter>? Node { get; set; }
        public TaskCompletionSource<IDisposable> Granted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>One held slot; disposing it twice releases it once.</summary>
    private sealed class Slot(PriorityGate gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Release();
            }
        }
    }
}
