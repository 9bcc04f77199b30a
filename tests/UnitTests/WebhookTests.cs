using System.ComponentModel.DataAnnotations;
using System.Security.Cryptography;
using System.Text;
using Async.Serving.Api.Webhooks;
using StandardWebhooks;

namespace Async.Serving.UnitTests;

public sealed class WebhookTests
{
    private static readonly TimeSpan[] Delays = [TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(5)];

    [Theory]
    [InlineData(0.0, 4.5)]
    [InlineData(0.5, 5.0)]
    [InlineData(1.0, 5.5)]
    public void The_retry_delay_is_the_configured_one_within_ten_percent(double random, double seconds) =>
        Assert.Equal(seconds, WebhookDelivery.RetryDelay(Delays, 1, null, random).TotalSeconds, 6);

    [Fact]
    public void A_delivery_broken_by_an_outage_is_run_again_and_only_a_judged_failure_is_final()
    {
        var retry = (Hangfire.AutomaticRetryAttribute)Assert.Single(
            typeof(WebhookDelivery).GetMethod(nameof(WebhookDelivery.DeliverAsync))!.GetCustomAttributes(typeof(Hangfire.AutomaticRetryAttribute), false));
        Assert.True(retry.Attempts >= 5);
        Assert.Equal([typeof(WebhookDeliveryFailedException)], retry.ExceptOn);
        Assert.Null(retry.OnlyOn); // a PostgreSQL or Redis exception is retried
        Assert.True(retry.DelaysInSeconds!.Sum() >= 300, "the retries span a few minutes of outage at least");
    }

    [Fact]
    public void A_longer_Retry_After_wins_and_a_shorter_one_does_not()
    {
        Assert.Equal(TimeSpan.FromMinutes(10), WebhookDelivery.RetryDelay(Delays, 2, TimeSpan.FromMinutes(10), 0.5));
        Assert.Equal(TimeSpan.FromMinutes(5), WebhookDelivery.RetryDelay(Delays, 2, TimeSpan.FromSeconds(30), 0.5));
    }

    [Fact]
    public void Secrets_are_whsec_and_32_random_bytes_that_StandardWebhooks_reads()
    {
        var secret = WebhookStore.NewSecret();
        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        Assert.Equal(32, key.Length);
        Assert.NotEqual(secret, WebhookStore.NewSecret());

        var at = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);
        var expected = "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes("msg_1.1700000000.{\"a\":1}")));
        Assert.Equal(expected, new StandardWebhook(secret).Sign("msg_1", at, "{\"a\":1}"));
    }

    [Fact]
    public void A_subscription_round_trips_through_its_stored_json()
    {
        var webhook = new WebhookSubscription("https://hooks.example.com/a", ["started", "completed"]);
        var read = WebhookSubscription.FromJson(webhook.ToJson())!;
        Assert.Equal(webhook.Url, read.Url);
        Assert.Equal(webhook.Events, read.Events);
        Assert.True(read.Wants(WebhookEvents.Started));
        Assert.False(read.Wants(WebhookEvents.Progress));
        Assert.Null(WebhookSubscription.FromJson(null));
    }

    [Fact]
    public void Options_refuse_a_retry_schedule_with_a_zero_delay()
    {
        var good = new WebhookOptions();
        Assert.Equal(WebhookOptions.DefaultRetryDelays, good.Delays);
        Assert.True(Validator.TryValidateObject(good, new ValidationContext(good), null, validateAllProperties: true));

        var bad = new WebhookOptions { RetryDelays = [TimeSpan.FromSeconds(1), TimeSpan.Zero] };
        Assert.False(Validator.TryValidateObject(bad, new ValidationContext(bad), null, validateAllProperties: true));
    }
}
