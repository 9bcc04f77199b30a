using Async.Serving.Api.Jobs;
using Async.Serving.Contracts;
using Microsoft.Extensions.Logging.Abstractions;

namespace Async.Serving.UnitTests;

public sealed class JobSenderTests
{
    private static RunInference Job(int n) => new()
    {
        JobId = $"job{n}",
        TenantId = "t",
        Pipeline = "image.embed",
        Model = "m",
        ModelVersion = "1",
        InputKey = $"input:job{n}",
        SubmittedAt = DateTimeOffset.UnixEpoch,
    };

    /// <summary>A broker whose confirms the test releases one message at a time.</summary>
    private sealed class HeldBroker
    {
        private readonly SemaphoreSlim _confirms = new(0);

        public List<string[]> Messages { get; } = [];

        public Exception? FailNext { get; set; }

        public async Task SendAsync(IReadOnlyList<RunInference> jobs)
        {
            lock (Messages)
            {
                Messages.Add([.. jobs.Select(j => j.JobId)]);
            }

            await _confirms.WaitAsync(TimeSpan.FromSeconds(10));
            if (FailNext is { } failure)
            {
                FailNext = null;
                throw failure;
            }
        }

        /// <summary>Lets <paramref name="count"/> of the sends waiting have their confirms.</summary>
        public void Confirm(int count = 1) => _confirms.Release(count);

        public async Task UntilSentAsync(int messages)
        {
            for (var i = 0; i < 500 && Count < messages; i++)
            {
                await Task.Delay(10);
            }

            Assert.Equal(messages, Count);
        }

        private int Count
        {
            get
            {
                lock (Messages)
                {
                    return Messages.Count;
                }
            }
        }
    }

    private static JobSender.Lane Lane(HeldBroker broker, int perMessage = 8, double timeoutSeconds = 10) =>
        new(broker.SendAsync, "infer-m-1", perMessage, () => TimeSpan.FromSeconds(timeoutSeconds), NullLogger.Instance);

    [Fact]
    public async Task A_lone_submit_goes_at_once_in_a_message_of_its_own()
    {
        var broker = new HeldBroker();
        var lane = Lane(broker);

        var first = lane.SendAsync(Job(1));
        await broker.UntilSentAsync(1);
        Assert.False(first.IsCompleted);
        broker.Confirm();
        await first;

        var second = lane.SendAsync(Job(2));
        broker.Confirm();
        await second;
        Assert.Equal([["job1"], ["job2"]], broker.Messages);
    }

    [Fact]
    public async Task Submits_that_wait_behind_a_send_go_together_in_order_and_a_full_message_does_not_wait()
    {
        var broker = new HeldBroker();
        var lane = Lane(broker, perMessage: 8);

        var submits = new List<Task> { lane.SendAsync(Job(0)) };
        await broker.UntilSentAsync(1);
        submits.AddRange(Enumerable.Range(1, 20).Select(n => lane.SendAsync(Job(n))));

        // Each whole message's worth went at once, beside the send in flight; the last 4 wait for a confirm.
        await broker.UntilSentAsync(3);
        Assert.DoesNotContain(submits, s => s.IsCompleted);
        broker.Confirm(3);

        // The last of them to end finds nobody else in flight and takes the rest.
        await broker.UntilSentAsync(4);
        broker.Confirm();

        await Task.WhenAll(submits).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([1, 8, 8, 4], broker.Messages.Select(m => m.Length));
        Assert.Equal(Enumerable.Range(0, 21).Select(n => $"job{n}"), broker.Messages.SelectMany(m => m));
    }

    [Fact]
    public async Task No_more_than_four_sends_to_a_queue_are_in_flight_at_once()
    {
        var broker = new HeldBroker();
        var lane = Lane(broker, perMessage: 2);

        var submits = Enumerable.Range(0, 12).Select(n => lane.SendAsync(Job(n))).ToList();
        await broker.UntilSentAsync(JobSender.Lane.MaxInFlight);
        await Task.Delay(100);
        Assert.Equal(JobSender.Lane.MaxInFlight, broker.Messages.Count);
        broker.Confirm(12);

        await Task.WhenAll(submits).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(12, broker.Messages.SelectMany(m => m).Distinct().Count());
        Assert.All(broker.Messages, m => Assert.InRange(m.Length, 1, 2));
    }

    [Fact]
    public async Task With_one_job_per_message_every_submit_sends_at_once()
    {
        var broker = new HeldBroker();
        var lane = Lane(broker, perMessage: 1);

        var submits = Enumerable.Range(0, 6).Select(n => lane.SendAsync(Job(n))).ToList();
        await broker.UntilSentAsync(6);
        broker.Confirm(6);

        await Task.WhenAll(submits).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(broker.Messages, m => Assert.Single(m));
    }

    [Fact]
    public async Task A_send_that_fails_fails_the_submits_it_carried_and_no_other()
    {
        var broker = new HeldBroker();
        var lane = Lane(broker);

        var first = lane.SendAsync(Job(1));
        await broker.UntilSentAsync(1);
        var carried = new[] { lane.SendAsync(Job(2)), lane.SendAsync(Job(3)) };
        broker.Confirm();
        await first;
        await broker.UntilSentAsync(2);

        var later = lane.SendAsync(Job(4));
        broker.FailNext = new InvalidOperationException("no confirm");
        broker.Confirm();
        foreach (var submit in carried)
        {
            var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => submit);
            Assert.Equal("no confirm", failure.Message);
        }

        await broker.UntilSentAsync(3);
        broker.Confirm();
        await later.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([["job1"], ["job2", "job3"], ["job4"]], broker.Messages);
    }

    [Fact]
    public async Task A_submit_that_waited_its_whole_publish_timeout_is_not_sent_late()
    {
        var broker = new HeldBroker();
        var lane = Lane(broker, timeoutSeconds: 0.2);

        var first = lane.SendAsync(Job(1));
        await broker.UntilSentAsync(1);
        var waiting = lane.SendAsync(Job(2));
        await Task.Delay(400);
        broker.Confirm();
        await first;

        await Assert.ThrowsAsync<TimeoutException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal([["job1"]], broker.Messages);

        // The lane is free again: the next submit goes at once.
        var next = lane.SendAsync(Job(3));
        await broker.UntilSentAsync(2);
        broker.Confirm();
        await next;
    }
}
