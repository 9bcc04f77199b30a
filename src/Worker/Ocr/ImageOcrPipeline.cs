using Async.Serving.Contracts.Outputs;
using Async.Serving.Jobs;
using Async.Serving.Models;
using Async.Serving.Worker.Batching;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Inference;
using Async.Serving.Worker.Observability;
using Microsoft.Extensions.Options;

namespace Async.Serving.Worker.Ocr;

/// <summary><c>image.ocr</c>: decode (EXIF orientation applied), detect text lines, classify and recognise them through the shared batchers.</summary>
internal sealed class ImageOcrPipeline(IOptions<WorkerOptions> options, OnnxSessionFactory sessions) : Pipeline<OcrModel>
{
    public override string Name => PipelineNames.ImageOcr;

    protected override (OcrModel Model, ModelLoad Load) LoadModel(ModelEntry entry)
    {
        var model = new OcrModel(entry, sessions, options.Value);
        var warm = model.WarmUp();
        var detectionBatch = WorkerMetrics.OcrDetectionBatchSize.WithLabels(entry.Id);
        model.Detector.BatchExecuted += (images, _, _, _) => detectionBatch.Observe(images);
        return (model, new ModelLoad(model.Provider, model.LoadTime, warm, model.Batchers));
    }

    protected override Task<string> RunJobAsync(OcrModel model, byte[] input, RunInference job, IJobProgress progress, CancellationToken cancellationToken) =>
        RunAsync(input, model, cancellationToken);

    public async Task<string> RunAsync(byte[] input, OcrModel model, CancellationToken cancellationToken)
    {
        // Very large photos are read at max_image_side; boxes are given in the original's pixels.
        var image = RgbImage.Decode(input, options.Value.MaxImagePixels, out var original, model.Entry.Config.Ocr!.MaxImageSide);
        cancellationToken.ThrowIfCancellationRequested();
        OcrResult result;
        try
        {
            result = await model.ReadAsync(image, cancellationToken).ConfigureAwait(false);
        }
        catch (BatchExecutionException ex)
        {
            throw new JobFailureException(JobErrorCodes.InferenceFailed, ex.Message, ex);
        }

        if (image.Width != original.Width || image.Height != original.Height)
        {
            double sx = (double)original.Width / image.Width, sy = (double)original.Height / image.Height;
            result = new OcrResult(original.Width, original.Height, [.. result.Lines.Select(l => l with
            {
                Box = [.. l.Box.Select(p => new System.Drawing.Point(
                    Math.Clamp((int)Math.Round(p.X * sx), 0, original.Width - 1),
                    Math.Clamp((int)Math.Round(p.Y * sy), 0, original.Height - 1)))],
            })]);
        }

        return ToJson(result);
    }

    /// <summary>The job's output: confidence to 4 decimals, boxes as <c>[x, y]</c> points.</summary>
    public static string ToJson(OcrResult result) => JobOutputs.Serialize(new ImageOcrOutput
    {
        Width = result.Width,
        Height = result.Height,
        Lines = [.. result.Lines.Select(l => new Contracts.Outputs.OcrLine
        {
            Text = l.Text,
            Confidence = Math.Round((double)l.Confidence, 4),
            Box = [.. l.Box.Select(p => new[] { p.X, p.Y })],
        })],
    });
}
