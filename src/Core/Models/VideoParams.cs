using System.Text.Json;

namespace Async.Serving.Models;

/// <summary>
/// <c>params</c> of a <c>video.analyze</c> job. Read by the API, which refuses a bad value with 422
/// before anything is stored, and again by the worker, which fails the job <c>input_invalid</c>.
/// </summary>
public sealed record VideoParams(double SampleFps, double ShotThreshold, bool Ocr)
{
    public static readonly string[] Names = ["sample_fps", "shot_threshold", "ocr"];

    /// <summary>The parameters with the model's defaults filled in, or the errors by field name.</summary>
    public static (VideoParams? Params, Dictionary<string, string[]> Errors) Parse(string? paramsJson, VideoConfig config)
    {
        var errors = new Dictionary<string, string[]>();
        var fps = config.DefaultSampleFps;
        var threshold = config.ShotThreshold;
        var ocr = false;
        if (string.IsNullOrWhiteSpace(paramsJson))
        {
            return (new VideoParams(fps, threshold, ocr), errors);
        }

        using var document = JsonDocument.Parse(paramsJson);
        foreach (var property in document.RootElement.EnumerateObject())
        {
            var value = property.Value;
            switch (property.Name)
            {
                case "sample_fps":
                    if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out fps) || fps <= 0 || fps > config.MaxSampleFps)
                    {
                        errors["params.sample_fps"] = [$"A number above 0 and at most {config.MaxSampleFps}."];
                    }

                    break;
                case "shot_threshold":
                    if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out threshold) || threshold <= 0 || threshold >= 2)
                    {
                        errors["params.shot_threshold"] = ["A cosine distance above 0 and below 2."];
                    }

                    break;
                case "ocr":
                    if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                    {
                        errors["params.ocr"] = ["true or false."];
                    }
                    else
                    {
                        ocr = value.GetBoolean();
                        if (ocr && config.OcrModel.Length == 0)
                        {
                            errors["params.ocr"] = ["This video model has no OCR model configured."];
                        }
                    }

                    break;
                default:
                    errors["params." + property.Name] = [$"Unknown parameter; video.analyze takes {string.Join(", ", Names)}."];
                    break;
            }
        }

        return errors.Count > 0 ? (null, errors) : (new VideoParams(fps, threshold, ocr), errors);
    }
}
