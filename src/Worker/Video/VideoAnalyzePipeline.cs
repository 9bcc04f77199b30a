using System.Buffers;
using System.Text;
using Async.Serving.Contracts.Outputs;
using Async.Serving.Jobs;
using Async.Serving.Models;
using Async.Serving.Worker.Batching;
using Async.Serving.Worker.Embedding;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Inference;
using Async.Serving.Worker.Ocr;

namespace Async.Serving.Worker.Video;

/// <summary>
/// <c>video.analyze</c>: ffmpeg samples frames at <c>sample_fps</c> into a pipe; each frame is
/// preprocessed into a pooled buffer and joins the embedding model's batcher (next to the
/// <c>image.embed</c> jobs' images) while the following frames decode. A bounded window of frames
/// is in flight, so memory does not grow with the video's length. Shots come from the distances
/// between consecutive embeddings; with <c>params.ocr</c>, every frame's text is read too and
/// merged into timed segments. Cancel and timeout kill ffmpeg and drop the frames still queued.
/// </summary>
internal sealed partial class VideoAnalyzePipeline(
    VideoWorkspace workspace,
    ImageEmbedPipeline embeddings,
    ImageOcrPipeline ocrs,
    ModelRepository repository,
    ILogger<VideoAnalyzePipeline> logger) : Pipeline<VideoModel>
{
    public override string Name => PipelineNames.VideoAnalyze;

    /// <summary>No weights of its own: the embedding and OCR models it names, loaded before it by their pipelines.</summary>
    protected override (VideoModel Model, ModelLoad Load) LoadModel(ModelEntry entry)
    {
        var v = entry.Config.Video!;
        var embedding = Loaded(embeddings, v.EmbeddingModel);
        var ocr = v.OcrModel.Length > 0 ? Loaded(ocrs, v.OcrModel) : null;
        return (new VideoModel(entry, embedding, ocr), ModelLoad.Composite(embedding.Provider));
    }

    private T Loaded<T>(Pipeline<T> pipeline, string reference)
        where T : class
    {
        var id = repository.Resolve(reference)!.Id;
        return pipeline.Get(id) ?? throw new InvalidOperationException($"{id} is not loaded for {pipeline.Name}.");
    }

    protected override Task<string> RunJobAsync(
        VideoModel model, byte[] input, RunInference job, IJobProgress progress, CancellationToken cancellationToken) =>
        RunJobAsync(model, JobInputSource.FromBytes(input), job, progress, cancellationToken);

    /// <summary>The video is copied into the workspace as a stream (from the blob store for a large one), never held whole.</summary>
    protected override async Task<string> RunJobAsync(
        VideoModel model, JobInputSource input, RunInference job, IJobProgress progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        var jobId = job.JobId;
        var config = model.Config;
        var (p, errors) = VideoParams.Parse(job.ParamsJson, config);
        if (p is null)
        {
            throw new JobFailureException(JobErrorCodes.InputInvalid, string.Join(" ", errors.Select(e => $"{e.Key}: {e.Value[0]}")));
        }

        if (p.Ocr && model.Ocr is null)
        {
            throw new JobFailureException(JobErrorCodes.InputInvalid, $"params.ocr: {model.Entry.Id} has no OCR model.");
        }

        var path = Path.Combine(workspace.Directory, $"{jobId}-{Guid.NewGuid():N}");
        try
        {
            // ffmpeg needs a seekable file: an MP4 whose index sits at the end cannot be read from a pipe.
            await input.CopyToFileAsync(path, cancellationToken).ConfigureAwait(false);
            var probe = await Ffmpeg.ProbeAsync(path, cancellationToken).ConfigureAwait(false);
            if (probe.DurationSeconds > config.MaxDurationSeconds)
            {
                throw new JobFailureException(JobErrorCodes.InputTooLarge,
                    $"The video is {probe.DurationSeconds:F1} s long; this model takes at most {config.MaxDurationSeconds:F0} s.");
            }

            LogProbe(logger, jobId, probe.Format, probe.Codec, probe.Width, probe.Height, probe.DurationSeconds ?? double.NaN, p.SampleFps);
            var result = await AnalyzeAsync(path, probe, p, model, progress, cancellationToken).ConfigureAwait(false);
            return ToJson(result, p);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static async Task<VideoResult> AnalyzeAsync(
        string path, VideoProbe probe, VideoParams p, VideoModel model, IJobProgress progress, CancellationToken cancellationToken)
    {
        var embedding = model.Embedding;
        var prep = embedding.Entry.Config.Preprocessing;
        var batcher = embedding.Batcher;
        // Without OCR, ffmpeg scales and crops straight to the model's input; with OCR, frames keep
        // enough pixels to read text and are cropped for the embedding here.
        var shape = p.Ocr
            ? new Ffmpeg.FrameShape(model.Config.FrameMaxSide, model.Config.FrameMaxSide, Fit: true, Crop: false)
            : new Ffmpeg.FrameShape(prep.Width, prep.Height, Fit: false, Crop: prep.Resize == "center_crop");
        var expected = probe.DurationSeconds is { } d ? Math.Max(1, (int)Math.Ceiling(d * p.SampleFps)) : 0;
        var text = p.Ocr ? new OcrVideoText(model.Ocr!) : null;
        var window = Math.Max(2, embedding.Entry.Config.MaxBatchSize * 2);
        var pending = new Queue<(Task<float[]> Task, float[] Buffer)>(window);
        var embeddings = new List<float[]>();
        var times = new List<double>();
        var texts = new List<FrameText>();
        var normalize = embedding.Entry.Config.L2Normalize;

        async Task CompleteOldestAsync()
        {
            var (task, buffer) = pending.Dequeue();
            try
            {
                var vector = await task.ConfigureAwait(false);
                if (normalize)
                {
                    VectorMath.NormalizeL2(vector);
                }

                embeddings.Add(vector);
            }
            catch (BatchExecutionException ex)
            {
                throw new JobFailureException(JobErrorCodes.InferenceFailed, ex.Message, ex);
            }
            finally
            {
                ArrayPool<float>.Shared.Return(buffer);
            }

            if (expected > 0)
            {
                await progress.ReportAsync(Math.Min(0.99, (double)embeddings.Count / expected)).ConfigureAwait(false);
            }
        }

        try
        {
            await foreach (var frame in Ffmpeg.ReadFramesAsync(path, p.SampleFps, shape, cancellationToken).ConfigureAwait(false))
            {
                using (frame)
                {
                    var buffer = ArrayPool<float>.Shared.Rent(batcher.InputLength);
                    ImagePreprocessor.PreprocessRgb(frame.Pixels, frame.Width, frame.Height, prep, buffer);
                    pending.Enqueue((batcher.InferAsync(buffer, cancellationToken), buffer));
                    times.Add(frame.Time);
                    if (text is not null)
                    {
                        texts.Add(await text.ReadAsync(frame, cancellationToken).ConfigureAwait(false));
                    }
                }

                while (pending.Count >= window)
                {
                    await CompleteOldestAsync().ConfigureAwait(false);
                }
            }

            while (pending.Count > 0)
            {
                await CompleteOldestAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            // Cancelled or failed: the frames still queued are dropped by the batcher (their tokens fired).
            while (pending.TryDequeue(out var left))
            {
                ArrayPool<float>.Shared.Return(left.Buffer);
            }
        }

        var duration = probe.DurationSeconds ?? times.Count / p.SampleFps;
        var shots = ShotDetector.Detect(embeddings, times, p.ShotThreshold, duration);
        var segments = text is null ? null : TextTimeline.Build(texts, 1 / p.SampleFps, duration);
        return new VideoResult(duration, times.Count, shots, segments);
    }

    private static string ToJson(VideoResult result, VideoParams p) => JobOutputs.Serialize(new VideoAnalyzeOutput
    {
        DurationS = Math.Round(result.Duration, 3),
        FramesAnalyzed = result.Frames,
        SampleFps = p.SampleFps,
        Shots = [.. result.Shots.Select(s => new VideoShot { StartS = s.Start, EndS = s.End, KeyframeS = s.Keyframe })],
        Text = result.Text?.Select(t => new VideoTextSegment { StartS = t.Start, EndS = t.End, Text = t.Text }).ToList(),
    });

    private sealed record VideoResult(double Duration, int Frames, IReadOnlyList<Shot> Shots, IReadOnlyList<TextSegment>? Text);

    [LoggerMessage(EventId = 230, Level = LogLevel.Information,
        Message = "Job {JobId}: {Format}/{Codec} {Width}x{Height}, {Duration:F1} s, sampling at {Fps} fps")]
    private static partial void LogProbe(ILogger logger, string jobId, string format, string codec, int width, int height, double duration, double fps);
}
