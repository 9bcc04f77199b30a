using Async.Serving.Api.Ledger;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Async.Serving.UnitTests;

public sealed class LedgerWriterTests
{
    /// <summary>Behaves like a stream consumer group: entries stay pending, and are read again, until acknowledged.</summary>
    private sealed class FakeSource : ILedgerSource
    {
        public List<string> Pending { get; } = [];

        public List<string> Acked { get; } = [];

        public Task<LedgerBatch> ReadAsync(int count, CancellationToken cancellationToken)
        {
            var ids = Pending.Take(count).ToList();
            return Task.FromResult(new LedgerBatch(ids, [.. ids.Select(i => new LedgerEvent("job-" + i, "queued", DateTimeOffset.UnixEpoch))], [], []));
        }

        public Task AckAsync(LedgerBatch batch, CancellationToken cancellationToken)
        {
            Acked.AddRange(batch.EntryIds);
            Pending.RemoveAll(batch.EntryIds.Contains);
            return Task.CompletedTask;
        }
    }

    /// <summary>A PostgreSQL that is down for the first <c>failures</c> writes.</summary>
    private sealed class FlakySink(int failures) : ILedgerSink
    {
        public List<string> Written { get; } = [];

        public int Calls { get; private set; }

        public Task WriteAsync(LedgerBatch batch, CancellationToken cancellationToken)
        {
            if (++Calls <= failures)
            {
                throw new InvalidOperationException("database down");
            }

            Written.AddRange(batch.EntryIds);
            return Task.CompletedTask;
        }

        public bool IsTransient(Exception exception) => true;
    }

    /// <summary>A database that refuses any batch holding a change of job <c>job-bad</c>, for good.</summary>
    private sealed class PickySink : ILedgerSink
    {
        public List<string> Jobs { get; } = [];

        public Task WriteAsync(LedgerBatch batch, CancellationToken cancellationToken)
        {
            if (batch.Events.Any(e => e.JobId == "job-bad"))
            {
                throw new ArgumentException("value out of range");
            }

            Jobs.AddRange(batch.Events.Select(e => e.JobId));
            return Task.CompletedTask;
        }

        public bool IsTransient(Exception exception) => exception is not ArgumentException;
    }

    private static LedgerWriter Writer(ILedgerSource source, ILedgerSink sink, int batchSize = 2) =>
        new(source, sink, Options.Create(new LedgerOptions { BatchSize = batchSize }), NullLogger<LedgerWriter>.Instance);

    [Fact]
    public async Task A_failed_write_acknowledges_nothing_and_the_same_entries_are_written_once_the_sink_is_back()
    {
        var source = new FakeSource();
        source.Pending.AddRange(["1-0", "2-0", "3-0"]);
        var sink = new FlakySink(failures: 2);
        var writer = Writer(source, sink);

        await Assert.ThrowsAsync<InvalidOperationException>(() => writer.PumpAsync(CancellationToken.None));
        await Assert.ThrowsAsync<InvalidOperationException>(() => writer.PumpAsync(CancellationToken.None));
        Assert.Equal(2, writer.Failures);
        Assert.Empty(source.Acked);
        Assert.Equal(3, source.Pending.Count);

        Assert.Equal(2, await writer.PumpAsync(CancellationToken.None));
        Assert.Equal(0, writer.Failures);
        Assert.Equal(1, await writer.PumpAsync(CancellationToken.None));
        Assert.Equal(0, await writer.PumpAsync(CancellationToken.None));
        Assert.Equal(["1-0", "2-0", "3-0"], sink.Written);
        Assert.Equal(["1-0", "2-0", "3-0"], source.Acked);
        Assert.Empty(source.Pending);
    }

    [Fact]
    public async Task The_writer_keeps_retrying_in_the_background_until_the_ledger_caught_up()
    {
        var source = new FakeSource();
        source.Pending.AddRange(["1-0", "2-0", "3-0", "4-0", "5-0"]);
        var sink = new FlakySink(failures: 3);
        var writer = new LedgerWriter(source, sink, Options.Create(new LedgerOptions
        {
            BatchSize = 2,
            PollInterval = TimeSpan.FromMilliseconds(10),
            MaxBackoff = TimeSpan.FromMilliseconds(40),
        }), NullLogger<LedgerWriter>.Instance);

        await writer.StartAsync(CancellationToken.None);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (source.Pending.Count > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        await writer.StopAsync(CancellationToken.None);
        Assert.Empty(source.Pending);
        Assert.Equal(["1-0", "2-0", "3-0", "4-0", "5-0"], sink.Written);
    }

    [Fact]
    public async Task A_change_the_database_refuses_is_skipped_and_the_rest_of_its_batch_written()
    {
        var source = new FakeSource();
        source.Pending.AddRange(["1-0", "bad", "3-0"]);
        var sink = new PickySink();
        var writer = Writer(source, sink, batchSize: 3);

        Assert.Equal(3, await writer.PumpAsync(CancellationToken.None));
        Assert.Equal(["job-1-0", "job-3-0"], sink.Jobs);
        Assert.Empty(source.Pending);
        Assert.Equal(0, writer.Failures);
    }

    [Theory]
    [InlineData(1, 250)]
    [InlineData(2, 500)]
    [InlineData(3, 1000)]
    [InlineData(8, 30_000)]
    [InlineData(1000, 30_000)]
    public void Backoff_doubles_per_failure_up_to_the_maximum(int failures, int expectedMs) =>
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs),
            LedgerWriter.Backoff(failures, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(30)));
}
