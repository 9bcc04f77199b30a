using System.Net;
using System.Text;
using System.Text.Json;
using Async.Serving.Api.Auth;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Hangfire;
using Async.Serving.Api.Jobs;
using Microsoft.AspNetCore.Http;
using Npgsql;
using StackExchange.Redis;

namespace Async.Serving.UnitTests;

public sealed class SubmitInputTests
{
    [Theory]
    [InlineData("""{"pipeline":"image.embed","input":{"base64":"AAAA""", "image.embed")]
    [InlineData("""  { "Pipeline" : "video.analyze", "input": """, "video.analyze")]
    [InlineData("""{"model":"resnet18","metadata":{"a":[1,2]},"pipeline":"image.ocr","input""", "image.ocr")]
    [InlineData("""{"input":{"base64":"AAAA"},"pipeline":"image.embed"}""", null)] // input first: unknown until the end
    [InlineData("""{"metadata":{"a":"cut off""", null)]
    [InlineData("""{"pipeline":5}""", null)]
    [InlineData("""[1,2]""", null)]
    [InlineData("""not json""", null)]
    public void The_pipeline_is_seen_when_it_comes_before_the_input(string prefix, string? expected) =>
        Assert.Equal(expected, JsonSubmitBody.LeadingPipeline(Encoding.UTF8.GetBytes(prefix)));

    [Fact]
    public void Base64_decodes_with_line_breaks_and_refuses_what_is_too_large_or_not_base64()
    {
        var data = Enumerable.Range(0, 1000).Select(i => (byte)i).ToArray();
        var text = Encoding.ASCII.GetBytes(Convert.ToBase64String(data, Base64FormattingOptions.InsertLineBreaks));

        Assert.Equal(data, JsonSubmitBody.Decode(text, 1000, out var tooLarge));
        Assert.False(tooLarge);
        Assert.Null(JsonSubmitBody.Decode(text, 999, out tooLarge));
        Assert.True(tooLarge);
        Assert.Null(JsonSubmitBody.Decode("%%%%"u8, 1000, out tooLarge));
        Assert.False(tooLarge);
    }

    [Fact]
    public void Text_with_a_lone_surrogate_is_found_wherever_it_sits()
    {
        Assert.True(SubmitText.IsValid("plain \U0001F600 text"));
        Assert.False(SubmitText.IsValid("a\ud800"));
        Assert.False(SubmitText.IsValid("\udc00b"));
        Assert.False(SubmitText.IsValid("\ud800\ud800\udc00"));

        var element = JsonDocument.Parse("""{"ok":"\ud83d\ude00","list":[1,{"deep":"\udfff"}]}""").RootElement;
        Assert.Equal("metadata.list[1].deep", SubmitText.FirstInvalid(element, "metadata"));
        var name = JsonDocument.Parse("""{"\ud800":1}""").RootElement;
        Assert.Equal("metadata", SubmitText.FirstInvalid(name, "metadata"));
        var bytes = Encoding.UTF8.GetBytes("""{"s":"#"}""");
        bytes[6] = 0xFF;
        Assert.Equal("params.s", SubmitText.FirstInvalid(JsonDocument.Parse(bytes).RootElement, "params"));
    }

    [Theory]
    [InlineData("order-4711", true)]
    [InlineData("with space ~ and !", true)]
    [InlineData("", false)]
    [InlineData("caf\u00e9", false)]
    [InlineData("tab\there", false)]
    public void An_idempotency_key_is_visible_ascii(string key, bool valid) => Assert.Equal(valid, Async.Serving.Contracts.IdempotencyKeyRule.IsWellFormed(key));

    [Theory]
    [InlineData("203.0.113.9", "203.0.113.9")]
    [InlineData("::ffff:203.0.113.9", "203.0.113.9")]
    [InlineData("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64")]
    [InlineData(null, "unknown")]
    public void Key_lookups_are_counted_per_address_and_per_ipv6_network(string? address, string partition) =>
        Assert.Equal(partition, ApiKeyValidator.ClientPartition(address is null ? null : IPAddress.Parse(address)));

    [Theory]
    [InlineData(null, null, null)]
    [InlineData("http://api.example:5080", null, null)]
    [InlineData("https://api.example:5080", "same-origin", null)]
    [InlineData("http://evil.example", null, "Origin: http://evil.example")]
    [InlineData("null", null, "Origin: null")]
    [InlineData(null, "cross-site", "Sec-Fetch-Site: cross-site")]
    [InlineData(null, "same-site", "Sec-Fetch-Site: same-site")]
    [InlineData(null, "none", null)]
    public void Dashboard_requests_from_other_sites_are_recognised(string? origin, string? fetchSite, string? reason)
    {
        var context = new DefaultHttpContext();
        context.Request.Host = new HostString("api.example:5080");
        if (origin is not null)
        {
            context.Request.Headers.Origin = origin;
        }

        if (fetchSite is not null)
        {
            context.Request.Headers["Sec-Fetch-Site"] = fetchSite;
        }

        Assert.Equal(reason, DashboardGuard.CrossSiteReason(context.Request));
    }

    [Fact]
    public void Store_outages_are_503_and_other_failures_stay_500()
    {
        var redis = new RedisConnectionException(ConnectionFailureType.UnableToConnect, "down");
        Assert.Equal(503, OutageExceptionHandler.Classify(redis)?.Status);
        Assert.Equal(ApiProblems.StoreUnavailable, OutageExceptionHandler.Classify(new InvalidOperationException("wrapped", redis))?.Code);
        Assert.Equal(503, OutageExceptionHandler.Classify(new NpgsqlException("no connection"))?.Status);
        Assert.Equal(413, OutageExceptionHandler.Classify(new BadHttpRequestException("big", 413))?.Status);
        Assert.Equal(ApiProblems.InputInvalid, OutageExceptionHandler.Classify(new BadHttpRequestException("bad chunk", 400))?.Code);
        Assert.Null(OutageExceptionHandler.Classify(new InvalidOperationException("a bug")));
    }
}
