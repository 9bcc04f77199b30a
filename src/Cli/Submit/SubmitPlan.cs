namespace Async.Serving.Cli.Submit;

/// <summary>One file of a <c>serving submit</c> run: where it goes and where its result is written.</summary>
public sealed record SubmitItem(InputFile Input, string Pipeline, string? Model, string ResultPath, bool Skip);

/// <summary>
/// Decides, before anything is sent, each file's pipeline (<c>--pipeline</c>, else by its kind:
/// images to <c>image.embed</c>, videos to <c>video.analyze</c>), its result path, and whether its
/// result is already there (skipped unless <c>--force</c>).
/// </summary>
public static class SubmitPlan
{
    public static IReadOnlyList<SubmitItem> Build(
        IReadOnlyList<InputFile> inputs, string? pipeline, string? model, string? outDirectory, bool force, Func<string, bool>? fileExists = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (model is not null && pipeline is null)
        {
            throw new CliUsageException("--model needs --pipeline (without it each file goes to its kind's pipeline and that pipeline's default model).");
        }

        fileExists ??= File.Exists;
        var results = new Dictionary<string, InputFile>(StringComparer.Ordinal);
        var items = new List<SubmitItem>(inputs.Count);
        foreach (var input in inputs)
        {
            var itemPipeline = pipeline ?? MediaKinds.DefaultPipeline(input.Kind)
                ?? throw new CliUsageException(
                    $"Cannot tell whether '{input.FullPath}' is an image or a video by its name; give --pipeline. (The API takes images as JPEG, PNG, WebP, GIF or BMP: not TIFF, HEIC or SVG.)");
            var resultPath = ResultPaths.For(input, itemPipeline, outDirectory);
            if (!results.TryAdd(resultPath, input))
            {
                throw new CliUsageException(
                    $"'{results[resultPath].FullPath}' and '{input.FullPath}' would write the same result file '{resultPath}'; submit them separately or without --out.");
            }

            items.Add(new SubmitItem(input, itemPipeline, model, resultPath, Skip: !force && fileExists(resultPath)));
        }

        return items;
    }
}
