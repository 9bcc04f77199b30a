using Async.Serving.Api.Hangfire;
using Async.Serving.Api.Ledger;

namespace Async.Serving.UnitTests;

/// <summary>The pieces of the dashboard's inference pages that need no server: the list's cursor and the times shown.</summary>
public sealed class DashboardPagesTests
{
    private static LedgerRow Row(DateTimeOffset created, DateTimeOffset? started, DateTimeOffset? completed) =>
        new("job-1", "t", "image.embed", "resnet18@1", "succeeded", created, started, completed, 1, 10, 5, null, created);

    [Fact]
    public void A_cursor_reads_back_what_it_wrote_down_to_the_tick_and_with_dots_in_the_job_id()
    {
        var cursor = new LedgerCursor(new DateTimeOffset(2026, 12, 1, 21, 30, 5, TimeSpan.Zero).AddTicks(1234560), "job.with.dots");
        Assert.Equal(cursor, LedgerCursor.Parse(cursor.Format()));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("123")]
    [InlineData("123.")]
    [InlineData(".job")]
    [InlineData("-5.job")]
    [InlineData("12x.job")]
    [InlineData("99999999999999999999.job")]
    public void A_cursor_that_was_not_written_by_the_page_is_ignored(string? text) => Assert.Null(LedgerCursor.Parse(text));

    [Fact]
    public void Queue_time_runs_from_creation_to_start_and_execution_time_from_start_to_the_end()
    {
        var created = DateTimeOffset.UnixEpoch;
        var row = Row(created, created.AddMilliseconds(1500), created.AddMilliseconds(1750));
        Assert.Equal("1,500 ms", OperatorPage.Ms(InferenceJobsPages.QueueTime(row)));
        Assert.Equal("250 ms", OperatorPage.Ms(InferenceJobsPages.ExecutionTime(row)));
        var queued = Row(created, null, null);
        Assert.Equal("—", OperatorPage.Ms(InferenceJobsPages.QueueTime(queued)));
        Assert.Equal("—", OperatorPage.Ms(InferenceJobsPages.ExecutionTime(queued)));
    }

    [Fact]
    public void Status_labels_and_everything_else_written_are_encoded()
    {
        Assert.Equal("<span class=\"label label-default\">&lt;b&gt;</span>", OperatorPage.StatusLabel("<b>"));
        Assert.Equal("<span class=\"label label-success\">succeeded</span>", OperatorPage.StatusLabel("succeeded"));
        Assert.Equal("—", InferenceJobsPages.TraceIdCell(Row(DateTimeOffset.UnixEpoch, null, null)));
    }
}
