using Async.Serving.Models;
using Async.Serving.Worker.Embedding;
using Async.Serving.Worker.Ocr;

namespace Async.Serving.Worker.Video;

/// <summary>
/// A <c>video.analyze</c> model as loaded in a worker: no weights of its own, only the image
/// models its frames go through. They are the same loaded models (and batchers) that serve
/// <c>image.embed</c> and <c>image.ocr</c> jobs.
/// </summary>
internal sealed class VideoModel(ModelEntry entry, LoadedModel embedding, OcrModel? ocr)
{
    public ModelEntry Entry { get; } = entry;

    public VideoConfig Config => Entry.Config.Video!;

    public LoadedModel Embedding { get; } = embedding;

    /// <summary>Reads on-screen text when a job asks for it; null when the model has no OCR model.</summary>
    public OcrModel? Ocr { get; } = ocr;
}
