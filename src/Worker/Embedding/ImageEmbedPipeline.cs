using System.Buffers;
using System.Diagnostics;
using Async.Serving.Contracts.Outputs;
using Async.Serving.Jobs;
using Async.Serving.Models;
using Async.Serving.Worker.Batching;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Inference;
using Microsoft.Extensions.Options;

namespace Async.Serving.Worker.Embedding;

/// <summary><c>image.embed</c>: decode, preprocess into a pooled buffer, one slot in the model's batch, L2-normalise.</summary>
internal sealed class ImageEmbedPipeline(IOptions<WorkerOptions> options, OnnxSessionFactory sessions) : Pipeline<LoadedModel>
{
    public override string Name => PipelineNames.ImageEmbed;

    protected override (LoadedModel Model, ModelLoad Load) LoadModel(ModelEntry entry)
    {
        var started = Stopwatch.GetTimestamp();
        var (session, provider) = sessions.Create(entry.ModelPath, entry.Config.ExecutionProvider);
        var model = new LoadedModel(entry, session, provider, Stopwatch.GetElapsedTime(started));
        var warm = model.WarmUp();
        return (model, new ModelLoad(provider, model.LoadTime, warm, [model.Batcher]));
    }

    protected override Task<string> RunJobAsync(LoadedModel model, byte[] input, RunInference job, IJobProgress progress, CancellationToken cancellationToken) =>
        RunAsync(input, model, cancellationToken);

    public async Task<string> RunAsync(byte[] input, LoadedModel model, CancellationToken cancellationToken)
    {
        var vector = await EmbedAsync(input, model, cancellationToken).ConfigureAwait(false);
        return ToJson(vector);
    }

    /// <summary>The model's output for one image, L2-normalised when the model's config says so.</summary>
    public async Task<float[]> EmbedAsync(byte[] input, LoadedModel model, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<float>.Shared.Rent(model.Batcher.InputLength);
        try
        {
            ImagePreprocessor.Preprocess(input, model.Entry.Config.Preprocessing, options.Value.MaxImagePixels, buffer);
            cancellationToken.ThrowIfCancellationRequested();
            float[] output;
            try
            {
                output = await model.Batcher.InferAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (BatchExecutionException ex)
            {
                throw new JobFailureException(JobErrorCodes.InferenceFailed, ex.Message, ex);
            }

            if (model.Entry.Config.L2Normalize)
            {
                VectorMath.NormalizeL2(output);
            }

            return output;
        }
        finally
        {
            // The batcher is done with the input once its task completes, except for a cancelled item
            // that a batch already running may still read: its values only reach a discarded result.
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    public static string ToJson(float[] embedding) =>
        JobOutputs.Serialize(new ImageEmbedOutput { Embedding = embedding, Dims = embedding.Length });
}
