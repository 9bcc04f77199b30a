using System.Text.Json.Serialization;

namespace Async.Serving.Contracts.Outputs;

/// <summary>The pipelines this platform runs, as they appear on the wire.</summary>
public static class PipelineNames
{
    public const string ImageEmbed = "image.embed";
    public const string ImageOcr = "image.ocr";
    public const string VideoAnalyze = "video.analyze";

    public static IReadOnlyList<string> All { get; } = [ImageEmbed, ImageOcr, VideoAnalyze];
}

/// <summary>
/// The output of a succeeded job. Its <c>pipeline</c> property names the concrete shape, so one
/// definition feeds the worker's wire format, the OpenAPI schema (<c>oneOf</c> with a discriminator)
/// and the client library.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "pipeline")]
[JsonDerivedType(typeof(ImageEmbedOutput), PipelineNames.ImageEmbed)]
[JsonDerivedType(typeof(ImageOcrOutput), PipelineNames.ImageOcr)]
[JsonDerivedType(typeof(VideoAnalyzeOutput), PipelineNames.VideoAnalyze)]
public abstract record JobOutput;

/// <summary><c>image.embed</c>: an L2-normalised embedding.</summary>
public sealed record ImageEmbedOutput : JobOutput
{
    public required float[] Embedding { get; init; }

    /// <summary>The number of values in <see cref="Embedding"/>.</summary>
    public required int Dims { get; init; }
}

/// <summary><c>image.ocr</c>: text lines in reading order; boxes in the original image's pixels.</summary>
public sealed record ImageOcrOutput : JobOutput
{
    public required int Width { get; init; }
    public required int Height { get; init; }
    public required IReadOnlyList<OcrLine> Lines { get; init; }
}

/// <summary>One line of text.</summary>
public sealed record OcrLine
{
    public required string Text { get; init; }

    /// <summary>Mean character confidence, 0 to 1, to 4 decimals.</summary>
    public required double Confidence { get; init; }

    /// <summary>The line's quadrilateral as four <c>[x, y]</c> points, clockwise from top-left.</summary>
    public required IReadOnlyList<int[]> Box { get; init; }
}

/// <summary><c>video.analyze</c>: shots and, with an OCR model, on-screen text over time.</summary>
public sealed record VideoAnalyzeOutput : JobOutput
{
    /// <summary>The video's duration in seconds, to 3 decimals.</summary>
    public required double DurationS { get; init; }
    public required int FramesAnalyzed { get; init; }
    public required double SampleFps { get; init; }
    public required IReadOnlyList<VideoShot> Shots { get; init; }

    /// <summary>On-screen text segments; absent (not null) when the job did not read text.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<VideoTextSegment>? Text { get; init; }
}

/// <summary>A shot: a run of frames between two cuts.</summary>
public sealed record VideoShot
{
    public required double StartS { get; init; }
    public required double EndS { get; init; }

    /// <summary>The time of the frame most like the rest of the shot.</summary>
    public required double KeyframeS { get; init; }
}

/// <summary>Text visible on screen from <see cref="StartS"/> to <see cref="EndS"/>.</summary>
public sealed record VideoTextSegment
{
    public required double StartS { get; init; }
    public required double EndS { get; init; }
    public required string Text { get; init; }
}

/// <summary>
/// Source-generated serialization of <see cref="JobOutput"/>: snake_case, nulls left out, the
/// discriminator accepted anywhere in the object.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    AllowOutOfOrderMetadataProperties = true)]
[JsonSerializable(typeof(JobOutput))]
public sealed partial class JobOutputJsonContext : JsonSerializerContext;
