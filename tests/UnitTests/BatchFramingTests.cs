using Async.Serving.Api.Batches;

namespace Async.Serving.UnitTests;

/// <summary>The framing <c>POST /v1/batches</c> checks per line before storing it: one JSON object with a valid <c>custom_id</c>.</summary>
public sealed class BatchFramingTests
{
    [Theory]
    [InlineData("""{"custom_id":"a-1","pipeline":"image.embed","input":{"base64":"AAAA"}}""", "a-1")]
    [InlineData("""{"pipeline":"image.embed","params":{"custom_id":"inner"},"custom_id":"last"}  """, "last")] // only the top level counts
    [InlineData("""{"custom_id":"\u00e9t\u00e9"}""", "été")]
    public void A_well_framed_line_gives_its_custom_id(string line, string expected)
    {
        var (customId, problem) = BatchUpload.Frame(System.Text.Encoding.UTF8.GetBytes(line));
        Assert.Null(problem);
        Assert.Equal(expected, customId);
    }

    [Theory]
    [InlineData("""{"pipeline":"image.embed"}""", "custom_id is required.")]
    [InlineData("""{"custom_id":7}""", "custom_id must be a string.")]
    [InlineData("""{"custom_id":null}""", "custom_id must be a string.")]
    [InlineData("""{"custom_id":""}""", "custom_id must be 1 to 128 characters.")]
    [InlineData("""{"custom_id":"a\tb"}""", "custom_id must be valid text without control characters.")]
    [InlineData("""[{"custom_id":"a"}]""", "Not a JSON object.")]
    [InlineData("""not json""", "Not valid JSON")]
    [InlineData("""{"custom_id":"a"} {"custom_id":"b"}""", "Not valid JSON")]
    [InlineData("""{"custom_id":"a",""", "Not valid JSON")]
    public void A_badly_framed_line_is_named_for_what_is_wrong(string line, string expected)
    {
        var (customId, problem) = BatchUpload.Frame(System.Text.Encoding.UTF8.GetBytes(line));
        Assert.Null(customId);
        Assert.StartsWith(expected, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_custom_id_that_is_not_valid_text_is_refused() =>
        Assert.NotNull(BatchUpload.Frame("""{"custom_id":"\ud800"}"""u8).Problem);

    [Fact]
    public void A_custom_id_longer_than_the_limit_is_refused()
    {
        var line = $$"""{"custom_id":"{{new string('x', BatchOptions.MaxCustomIdLength + 1)}}"}""";
        Assert.Equal("custom_id must be 1 to 128 characters.", BatchUpload.Frame(System.Text.Encoding.UTF8.GetBytes(line)).Problem);
        var longest = $$"""{"custom_id":"{{new string('x', BatchOptions.MaxCustomIdLength)}}"}""";
        Assert.Null(BatchUpload.Frame(System.Text.Encoding.UTF8.GetBytes(longest)).Problem);
    }

    [Theory]
    [InlineData("batch_0193a1f0c2d47e4f9b2a6c8d0e1f2a3b", true)]
    [InlineData("batch_0193A1F0C2D47E4F9B2A6C8D0E1F2A3B", false)]
    [InlineData("0193a1f0c2d47e4f9b2a6c8d0e1f2a3b", false)]
    [InlineData("batch_0193a1f0c2d47e4f9b2a6c8d0e1f2a3", false)]
    [InlineData("batch_../../etc/passwd000000000000000", false)]
    public void Batch_ids_are_checked_before_any_query(string id, bool wellFormed) =>
        Assert.Equal(wellFormed, BatchStore.IsWellFormed(id));
}
