using Async.Serving.Api.Cache;
using Async.Serving.Jobs;

namespace Async.Serving.UnitTests;

public sealed class CacheKeyTests
{
    [Theory]
    [InlineData(null, "{}")]
    [InlineData("", "{}")]
    [InlineData("null", "{}")]
    [InlineData("{}", "{}")]
    [InlineData("""{ "b": 1, "a": { "d": [ 1, { "z": true, "y": null } ], "c": "x" } }""", """{"a":{"c":"x","d":[1,{"y":null,"z":true}]},"b":1}""")]
    [InlineData("""{"sample_fps": 2.50, "ocr": false}""", """{"ocr":false,"sample_fps":2.50}""")]
    [InlineData("""{"text": "é<>&"}""", """{"text":"é<>&"}""")]
    public void Params_are_canonical_json(string? json, string canonical) => Assert.Equal(canonical, CacheKeys.CanonicalParams(json));

    [Fact]
    public void Each_part_of_the_key_changes_it_and_key_order_does_not()
    {
        byte[] input = [1, 2, 3];
        var key = CacheKeys.Compute("tenant:a", "image.embed", "resnet18@1", "f1", """{"a":1,"b":2}""", input);
        Assert.Matches("^[0-9a-f]{64}$", key);
        Assert.Equal(key, CacheKeys.Compute("tenant:a", "image.embed", "resnet18@1", "f1", """{ "b": 2, "a": 1 }""", input));
        Assert.NotEqual(key, CacheKeys.Compute("tenant:b", "image.embed", "resnet18@1", "f1", """{"a":1,"b":2}""", input));
        Assert.NotEqual(key, CacheKeys.Compute("tenant:a", "image.ocr", "resnet18@1", "f1", """{"a":1,"b":2}""", input));
        Assert.NotEqual(key, CacheKeys.Compute("tenant:a", "image.embed", "resnet18@2", "f1", """{"a":1,"b":2}""", input));
        Assert.NotEqual(key, CacheKeys.Compute("tenant:a", "image.embed", "resnet18@1", "f2", """{"a":1,"b":2}""", input));
        Assert.NotEqual(key, CacheKeys.Compute("tenant:a", "image.embed", "resnet18@1", "f1", """{"a":1,"b":3}""", input));
        Assert.NotEqual(key, CacheKeys.Compute("tenant:a", "image.embed", "resnet18@1", "f1", """{"a":1,"b":2}""", [1, 2, 4]));
    }

    [Fact]
    public void A_job_id_made_for_a_key_is_in_the_keys_shard()
    {
        for (var i = 0; i < 64; i++)
        {
            var key = CacheKeys.Compute("t", "image.embed", "m@1", "f", null, [(byte)i]);
            var id = RedisJobStore.NewJobIdIn(key);
            Assert.Matches("^[0-9a-f]{32}$", id);
            Assert.Equal(RedisJobStore.ShardOf(key), RedisJobStore.ShardOf(id));
            Assert.NotNull(RedisJobStore.CreatedAtOf(id));
        }
    }
}
