using Async.Serving.Api.Auth;

namespace Async.Serving.UnitTests;

public sealed class ApiKeyTests
{
    [Fact]
    public void New_keys_are_prefixed_random_and_well_formed()
    {
        var keys = Enumerable.Range(0, 100).Select(_ => ApiKeyStore.NewKey()).ToList();

        Assert.All(keys, key =>
        {
            Assert.StartsWith("sk_live_", key, StringComparison.Ordinal);
            Assert.Equal(ApiKeyStore.KeyLength, key.Length);
            Assert.True(ApiKeyStore.IsWellFormed(key));
            Assert.DoesNotContain('+', key);
            Assert.DoesNotContain('/', key);
            Assert.DoesNotContain('=', key);
        });
        Assert.Equal(keys.Count, keys.Distinct().Count());
    }

    [Theory]
    [InlineData("")]
    [InlineData("sk_live_")]
    [InlineData("sk_dev_0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("sk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] // one character short
    [InlineData("sk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!A")]
    public void Malformed_keys_are_recognised_without_a_lookup(string key) => Assert.False(ApiKeyStore.IsWellFormed(key));

    [Fact]
    public void The_hash_is_sha256_of_the_utf8_key()
    {
        Assert.Equal(
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            Convert.ToHexString(ApiKeyStore.Hash(string.Empty)));
        Assert.Equal(32, ApiKeyStore.Hash(ApiKeyStore.NewKey()).Length);
    }

    [Fact]
    public void A_record_is_valid_until_it_expires_or_is_revoked()
    {
        var now = DateTimeOffset.UtcNow;
        var record = new ApiKeyRecord(Guid.NewGuid(), "t", "n", "sk_live_abcd", now.AddDays(-1), ExpiresAt: null, RevokedAt: null);

        Assert.True(record.IsValidAt(now));
        Assert.True((record with { ExpiresAt = now.AddSeconds(1) }).IsValidAt(now));
        Assert.False((record with { ExpiresAt = now }).IsValidAt(now));
        Assert.False((record with { RevokedAt = now.AddHours(-1) }).IsValidAt(now));
    }

    private static string[] Split(string args) => args.Split('|', StringSplitOptions.RemoveEmptyEntries);

    [Theory]
    [InlineData("acme", "acme", "default", null)]
    [InlineData("acme|ci", "acme", "ci", null)]
    [InlineData("acme|--name|deploy bot|--expires-days|90", "acme", "deploy bot", 90)]
    [InlineData("--expires-days|1|team.a_b-c", "team.a_b-c", "default", 1)]
    public void Create_key_arguments_parse(string args, string tenant, string name, int? days)
    {
        Assert.True(CreateKeyCommand.TryParse(Split(args), out var request, out var error), error);
        Assert.Equal(new CreateKeyCommand.Request(tenant, name, days), request);
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("acme|--expires-days|0")]
    [InlineData("acme|--expires-days|soon")]
    [InlineData("acme|--expires-days")]
    [InlineData("acme|--bogus|x")]
    [InlineData("acme|one|two")]
    public void Bad_create_key_arguments_are_refused(string args)
    {
        Assert.False(CreateKeyCommand.TryParse(Split(args), out var request, out var error));
        Assert.Null(request);
        Assert.False(string.IsNullOrEmpty(error));
    }
}
