using Async.Serving.Api.Routing;
using Async.Serving.Models;

namespace Async.Serving.UnitTests;

public sealed class RoutingTableTests
{
    private static ModelEntry Version(string version) => new("m", version, "/nowhere", new ModelConfig { Pipeline = "image.embed" });

    private static readonly ModelEntry One = Version("1");
    private static readonly ModelEntry Two = Version("2");

    [Fact]
    public void A_point_is_stable_in_range_and_differs_per_model()
    {
        var points = Enumerable.Range(0, 10_000).Select(i => RoutingTable.Point("resnet18", $"user-{i}")).ToList();
        Assert.All(points, p => Assert.InRange(p, 0, 99.999999));
        Assert.Equal(points[42], RoutingTable.Point("resnet18", "user-42"));
        Assert.NotEqual(points[42], RoutingTable.Point("resnet34", "user-42"));
        // Spread evenly: each tenth of the range holds about a tenth of the keys.
        Assert.All(Enumerable.Range(0, 10), d => Assert.InRange(points.Count(p => p >= d * 10 && p < (d + 1) * 10), 850, 1150));
    }

    [Fact]
    public void Bands_follow_the_version_order_and_the_weights_normalised()
    {
        (ModelEntry, int)[] split = [(One, 9), (Two, 1)];
        Assert.Same(One, RoutingTable.Pick(split, 0));
        Assert.Same(One, RoutingTable.Pick(split, 89.99));
        Assert.Same(Two, RoutingTable.Pick(split, 90));
        Assert.Same(Two, RoutingTable.Pick(split, 99.999));
        Assert.Same(Two, RoutingTable.Pick([(One, 0), (Two, 5)], 0));
        Assert.Null(RoutingTable.Pick([(One, 0), (Two, 0)], 50));
        Assert.Null(RoutingTable.Pick([], 50));
    }

    [Fact]
    public void Raising_the_canary_moves_keys_only_into_it_and_lowering_it_only_out_of_it()
    {
        var points = Enumerable.Range(0, 5000).Select(i => RoutingTable.Point("m", $"k{i}")).ToList();
        var before = points.Select(p => RoutingTable.Pick([(One, 90), (Two, 10)], p)).ToList();
        var after = points.Select(p => RoutingTable.Pick([(One, 80), (Two, 20)], p)).ToList();
        Assert.DoesNotContain(Enumerable.Range(0, points.Count), i => before[i] == Two && after[i] == One);
        Assert.Contains(Enumerable.Range(0, points.Count), i => before[i] == One && after[i] == Two);
    }

    [Fact]
    public void Shares_are_the_weights_over_their_sum()
    {
        var table = new RoutingTable(new Dictionary<string, int> { ["1"] = 1, ["2"] = 3 }, DateTimeOffset.UnixEpoch, "t");
        Assert.Equal(25, table.Percent("1"));
        Assert.Equal(75, table.Percent("2"));
        Assert.Equal(0, table.Percent("3"));
    }

    [Fact]
    public void Weights_must_name_versions_of_the_newest_versions_pipeline_and_one_must_be_above_zero()
    {
        var video = new ModelEntry("m", "0", "/nowhere", new ModelConfig { Pipeline = "video.analyze" });
        IReadOnlyList<ModelEntry> versions = [video, One, Two];
        var (weights, problem) = RoutingApi.Check(versions, new Dictionary<string, int> { ["1"] = 90, ["2"] = 10 });
        Assert.Null(problem);
        Assert.Equal(90, weights!["1"]);
        Assert.Equal(422, RoutingApi.Check(versions, new Dictionary<string, int> { ["3"] = 1 }).Problem!.StatusCode);
        Assert.Equal(400, RoutingApi.Check(versions, new Dictionary<string, int> { ["0"] = 1, ["2"] = 1 }).Problem!.StatusCode);
        Assert.Equal(400, RoutingApi.Check(versions, new Dictionary<string, int> { ["1"] = 0 }).Problem!.StatusCode);
        Assert.Equal(400, RoutingApi.Check(versions, new Dictionary<string, int> { ["1"] = RoutingTable.MaxWeight + 1 }).Problem!.StatusCode);
        Assert.Equal(400, RoutingApi.Check(versions, null).Problem!.StatusCode);
    }
}
