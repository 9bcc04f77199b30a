using System.Buffers;
using Async.Serving.Contracts.Outputs;
using Async.Serving.Models;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Inference;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;

namespace Async.Serving.Baseline;

/// <summary>
/// One model, one session, one image per <c>Run</c>: no queue and no batching. The session comes
/// from the worker's own <see cref="OnnxSessionFactory"/> with the worker's options (section
/// <c>Serving:Worker</c>), and each image goes through the worker's <see cref="ImagePreprocessor"/>,
/// so an image costs what it costs in the worker and gives the same embedding.
/// </summary>
internal sealed partial class EmbeddingModel : IDisposable
{
    private readonly InferenceSession _session;
    private readonly ModelConfig _config;
    private readonly long _maxPixels;
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    private readonly long[] _shape;
    private readonly int _inputLength;
    private readonly RunOptions _runOptions = new();

    public EmbeddingModel(IOptions<BaselineOptions> options, IOptions<WorkerOptions> workerOptions, ILoggerFactory loggers)
    {
        var entry = ModelRepository.Load(options.Value.ModelsPath, requireWeights: true).Resolve(options.Value.Model)
            ?? throw new ModelConfigException($"Model '{options.Value.Model}' is not in {options.Value.ModelsPath}.");
        if (entry.Config.Pipeline != PipelineNames.ImageEmbed)
        {
            throw new ModelConfigException($"Model {entry.Id} is an {entry.Config.Pipeline} model; the baseline serves image.embed models.");
        }

        (_session, Provider) = new OnnxSessionFactory(workerOptions.Value, loggers.CreateLogger<OnnxSessionFactory>())
            .Create(entry.ModelPath, entry.Config.ExecutionProvider);
        Id = entry.Id;
        _config = entry.Config;
        _maxPixels = workerOptions.Value.MaxImagePixels;
        _inputNames = [_config.Input.Name];
        _outputNames = [_config.Output.Name];
        _shape = [1, .. _config.Input.Shape.Select(d => (long)d)];
        _inputLength = _config.Input.Shape.Aggregate(1, (a, b) => a * b);
        LogLoaded(loggers.CreateLogger<EmbeddingModel>(), Id, Provider);
    }

    public string Id { get; }

    public string Provider { get; }

    /// <summary>Decodes, preprocesses and runs one image, on the caller's thread; the output L2-normalised when the config says so.</summary>
    public float[] Embed(ReadOnlySpan<byte> image)
    {
        var buffer = ArrayPool<float>.Shared.Rent(_inputLength);
        try
        {
            ImagePreprocessor.Preprocess(image, _config.Preprocessing, _maxPixels, buffer);
            using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, buffer.AsMemory(0, _inputLength), _shape);
            using var results = _session.Run(_runOptions, _inputNames, [input], _outputNames);
            var embedding = results[0].GetTensorDataAsSpan<float>().ToArray();
            if (_config.L2Normalize)
            {
                VectorMath.NormalizeL2(embedding);
            }

            return embedding;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    public void Dispose()
    {
        _session.Dispose();
        _runOptions.Dispose();
    }

    [LoggerMessage(EventId = 960, Level = LogLevel.Information, Message = "Baseline ready: {Model} on {Provider}, one image per run")]
    private static partial void LogLoaded(ILogger logger, string model, string provider);
}
