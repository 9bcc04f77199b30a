using Async.Serving.Models;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Video;

namespace Async.Serving.UnitTests;

public sealed class VideoAnalysisTests
{
    /// <summary>A unit vector pointing mostly along <paramref name="axis"/>, tilted a little by <paramref name="wobble"/>.</summary>
    private static float[] Vector(int axis, float wobble = 0)
    {
        var v = new float[8];
        v[axis] = 1;
        v[(axis + 1) % 8] = wobble;
        VectorMath.NormalizeL2(v);
        return v;
    }

    [Fact]
    public void Shots_split_where_consecutive_frames_differ_and_boundaries_fall_between_frames()
    {
        // 2 fps: frames at 0, 0.5, …; the scene changes between frame 3 (1.5 s) and frame 4 (2.0 s).
        float[][] frames = [Vector(0), Vector(0, 0.05f), Vector(0, 0.1f), Vector(0, 0.05f), Vector(3), Vector(3, 0.1f)];
        double[] times = [0, 0.5, 1.0, 1.5, 2.0, 2.5];
        var shots = ShotDetector.Detect(frames, times, threshold: 0.2, duration: 3.0);

        Assert.Equal(2, shots.Count);
        Assert.Equal((0.0, 1.75), (shots[0].Start, shots[0].End));
        Assert.Equal((1.75, 3.0), (shots[1].Start, shots[1].End));
        // The keyframe is the most typical frame: the middle of the wobble.
        Assert.Equal(0.5, shots[0].Keyframe);
        Assert.InRange(shots[1].Keyframe, 2.0, 2.5);
    }

    [Fact]
    public void A_modest_distance_among_tiny_ones_is_a_cut_but_steady_large_distances_are_motion()
    {
        // Frames drifting slowly, then a jump of about 0.15 (two similar-looking scenes).
        var slow = Enumerable.Range(0, 6).Select(i => Vector(0, 0.02f * i)).ToList();
        var similar = Enumerable.Range(0, 6).Select(i => Mix(slow[^1], Vector(5), 0.38f + (0.01f * i))).ToList();
        float[][] frames = [.. slow, .. similar];
        var times = Enumerable.Range(0, frames.Length).Select(i => i * 0.5).ToArray();
        var jump = ShotDetector.Distance(frames[5], frames[6]);
        Assert.InRange(jump, 0.12, 0.3);
        Assert.Equal(2, ShotDetector.Detect(frames, times, threshold: 0.12, duration: 6).Count);

        // A fast pan: every step is as large as that jump; nothing stands out, so one shot.
        var pan = Enumerable.Range(0, 12).Select(i => Mix(Vector(i % 8), Vector((i + 1) % 8), 0.5f)).ToArray();
        var steps = Enumerable.Range(1, pan.Length - 1).Select(i => ShotDetector.Distance(pan[i - 1], pan[i])).ToArray();
        Assert.All(steps, d => Assert.True(d > 0.12));
        Assert.Single(ShotDetector.Detect(pan, times, threshold: 0.12, duration: 6));
    }

    [Fact]
    public void A_dissolve_sampled_finely_is_one_boundary_in_its_middle()
    {
        // 10 fps: scene A until 1.5 s, a one-second dissolve, scene B from 2.5 s. No single step is a cut.
        var frames = Enumerable.Range(0, 50).Select(i => i < 15 ? Vector(0, 0.01f * (i % 3)) : i >= 25 ? Vector(4, 0.01f * (i % 3))
            : Mix(Vector(0), Vector(4), (i - 14) / 11f)).ToArray();
        var times = Enumerable.Range(0, 50).Select(i => i * 0.1).ToArray();
        Assert.All(Enumerable.Range(1, 49), i => Assert.True(ShotDetector.Distance(frames[i - 1], frames[i]) < 0.12, $"step {i}: {ShotDetector.Distance(frames[i - 1], frames[i])}"));

        var shots = ShotDetector.Detect(frames, times, threshold: 0.12, duration: 5.0);
        Assert.Equal(2, shots.Count);
        Assert.InRange(shots[0].End, 1.75, 2.25);
        Assert.Equal(shots[0].End, shots[1].Start);
        Assert.True(shots[0].Keyframe < 1.5 && shots[1].Keyframe >= 2.5);
    }

    [Fact]
    public void A_dissolve_caught_mid_way_is_one_boundary_not_a_one_frame_shot()
    {
        // 2 fps: the frame at 2.0 s is half A, half B.
        float[][] frames = [Vector(0), Vector(0, 0.02f), Vector(0), Vector(0, 0.02f), Mix(Vector(0), Vector(4), 0.5f), Vector(4), Vector(4, 0.02f), Vector(4), Vector(4, 0.02f)];
        var times = Enumerable.Range(0, frames.Length).Select(i => i * 0.5).ToArray();
        var shots = ShotDetector.Detect(frames, times, threshold: 0.12, duration: 4.5);
        Assert.Equal(2, shots.Count);
        Assert.Equal(2.0, shots[0].End);
    }

    private static float[] Mix(float[] a, float[] b, float t)
    {
        var v = a.Zip(b, (x, y) => ((1 - t) * x) + (t * y)).ToArray();
        VectorMath.NormalizeL2(v);
        return v;
    }

    [Fact]
    public void One_frame_is_one_shot_and_no_frames_are_none()
    {
        Assert.Empty(ShotDetector.Detect([], [], 0.2, 0));
        var shot = Assert.Single(ShotDetector.Detect([Vector(1)], [0.0], 0.2, 0.4));
        Assert.Equal((0.0, 0.4, 0.0), (shot.Start, shot.End, shot.Keyframe));
    }

    [Fact]
    public void Text_seen_on_consecutive_frames_becomes_one_segment_despite_a_misread_and_a_missed_frame()
    {
        static FrameText F(double t, params string[] lines) => new(t, [.. lines.Select(l => (l, 0.9f))]);
        FrameText[] frames =
        [
            F(0.0),
            F(0.5, "SALE ENDS FRIDAY"),
            F(1.0, "SALE ENDS FRIDAY", "50% OFF"),
            F(1.5, "SALE END5 FRIDAY"), // one character misread
            F(2.0),                      // one frame missed
            F(2.5, "SALE ENDS FRIDAY"),
            F(3.0),
            F(3.5),
            F(4.0, "SALE ENDS FRIDAY"),  // shown again after a real gap: a new segment
        ];
        var segments = TextTimeline.Build(frames, frameInterval: 0.5, duration: 4.2);

        Assert.Equal(3, segments.Count);
        Assert.Equal(new TextSegment(0.5, 3.0, "SALE ENDS FRIDAY"), segments[0]);
        Assert.Equal(new TextSegment(1.0, 1.5, "50% OFF"), segments[1]);
        Assert.Equal(new TextSegment(4.0, 4.2, "SALE ENDS FRIDAY"), segments[2]);
    }

    [Fact]
    public void Video_params_take_the_models_defaults_and_refuse_what_it_cannot_do()
    {
        var config = new VideoConfig { EmbeddingModel = "resnet18@1", DefaultSampleFps = 2, MaxSampleFps = 10, ShotThreshold = 0.2 };
        Assert.Equal(new VideoParams(2, 0.2, false), VideoParams.Parse(null, config).Params);
        Assert.Equal(new VideoParams(5, 0.3, false), VideoParams.Parse("""{ "sample_fps": 5, "shot_threshold": 0.3, "ocr": false }""", config).Params);

        var (p, errors) = VideoParams.Parse("""{ "sample_fps": 11, "ocr": true, "speed": 2 }""", config);
        Assert.Null(p);
        Assert.Equal(["params.ocr", "params.sample_fps", "params.speed"], errors.Keys.Order());
    }
}
