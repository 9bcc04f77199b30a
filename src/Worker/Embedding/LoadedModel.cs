using System.Diagnostics;
using Async.Serving.Models;
using Async.Serving.Worker.Batching;
using Microsoft.ML.OnnxRuntime;

namespace Async.Serving.Worker.Embedding;

/// <summary>One model version loaded in this worker: its ONNX Runtime session and its dynamic batcher.</summary>
internal sealed class LoadedModel : IAsyncDisposable
{
    private readonly InferenceSession _session;
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    private readonly long[] _itemShape;
    private readonly RunOptions _runOptions = new();

    public LoadedModel(ModelEntry entry, InferenceSession session, string provider, TimeSpan loadTime)
    {
        Entry = entry;
        _session = session;
        Provider = provider;
        LoadTime = loadTime;
        _inputNames = [entry.Config.Input.Name];
        _outputNames = [entry.Config.Output.Name];
        _itemShape = [.. entry.Config.Input.Shape.Select(d => (long)d)];
        if (!session.InputMetadata.ContainsKey(entry.Config.Input.Name))
        {
            throw new ModelConfigException($"{entry.Directory}/config.json: field 'input.name' is '{entry.Config.Input.Name}'; the model's inputs are {string.Join(", ", session.InputMetadata.Keys)}.");
        }

        if (!session.OutputMetadata.TryGetValue(entry.Config.Output.Name, out var output))
        {
            throw new ModelConfigException($"{entry.Directory}/config.json: field 'output.name' is '{entry.Config.Output.Name}'; the model's outputs are {string.Join(", ", session.OutputMetadata.Keys)}.");
        }

        var inputLength = entry.Config.Input.Shape.Aggregate(1, (a, b) => a * b);
        var outputLength = output.Dimensions.Skip(1).Aggregate(1, (a, b) => a * Math.Max(b, 1));
        Batcher = new DynamicBatcher(
            entry.Id,
            inputLength,
            outputLength,
            entry.Config.MaxBatchSize,
            TimeSpan.FromMilliseconds(entry.Config.MaxQueueDelayMs),
            entry.Config.Instances,
            Execute);
    }

    public ModelEntry Entry { get; }

    public string Provider { get; }

    public TimeSpan LoadTime { get; }

    public DynamicBatcher Batcher { get; }

    /// <summary>
    /// Makes every <c>Run</c> of this model fail at once (ONNX Runtime's terminate flag on its run
    /// options: a real <see cref="OnnxRuntimeException"/> from <c>Run</c>), or run again. The tests'
    /// way to make a loaded model fail every batch, as a broken GPU or a corrupt session would.
    /// </summary>
    internal void TerminateRuns(bool terminate) => _runOptions.Terminate = terminate;

    /// <summary>Runs one batch of zeros at the largest size, so the first real batch pays no warm-up.</summary>
    public TimeSpan WarmUp()
    {
        var started = Stopwatch.GetTimestamp();
        var n = Entry.Config.MaxBatchSize;
        Execute(new float[n * Batcher.InputLength], n, new float[n * Batcher.OutputLength]);
        return Stopwatch.GetElapsedTime(started);
    }

    public async ValueTask DisposeAsync()
    {
        await Batcher.DisposeAsync().ConfigureAwait(false);
        _session.Dispose();
        _runOptions.Dispose();
    }

    private void Execute(Memory<float> inputs, int count, Span<float> outputs)
    {
        long[] shape = [count, .. _itemShape];
        using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, inputs, shape);
        using var results = _session.Run(_runOptions, _inputNames, [input], _outputNames);
        var data = results[0].GetTensorDataAsSpan<float>();
        if (data.Length != outputs.Length)
        {
            throw new InvalidOperationException($"Model {Entry.Id} returned {data.Length} values for {count} items; expected {outputs.Length}.");
        }

        data.CopyTo(outputs);
    }
}
