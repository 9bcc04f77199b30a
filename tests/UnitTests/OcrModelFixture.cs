using System.Diagnostics;
using Async.Serving.Models;
using Async.Serving.Worker.Inference;
using Async.Serving.Worker.Ocr;
using Microsoft.Extensions.Logging.Abstractions;

namespace Async.Serving.UnitTests;

/// <summary>The repository's PP-OCRv4 model (models/ppocr/4), loaded and warmed up once for the OCR model tests.</summary>
public sealed class OcrModelFixture : IAsyncLifetime
{
    private OcrModel? _model;

    internal OcrModel Model => _model ?? throw new InvalidOperationException("The OCR model is not loaded.");

    public TimeSpan WarmUpTime { get; private set; }

    /// <summary>The folder holding Async.Serving.sln, found by walking up from the test binaries.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Async.Serving.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"No Async.Serving.sln above {AppContext.BaseDirectory}.");
    }

    public Task InitializeAsync()
    {
        // The weights scripts/lib.sh fetched: Serving__Models__Path (SERVING_MODELS_DIR) when set, else the checkout's models/.
        var models = Environment.GetEnvironmentVariable("Serving__Models__Path") is { Length: > 0 } path ? path : Path.Combine(RepositoryRoot(), "models");
        var repository = ModelRepository.Load(models, requireWeights: false);
        var entry = repository.Resolve("ppocr@4") ?? throw new InvalidOperationException("models/ppocr/4 is missing.");
        var sessions = new OnnxSessionFactory(new WorkerOptions(), NullLogger<OnnxSessionFactory>.Instance);
        _model = new OcrModel(entry, sessions);
        WarmUpTime = _model.WarmUp();
        Trace.WriteLine($"OCR model loaded in {_model.LoadTime.TotalMilliseconds:F0} ms on {_model.Provider}, warmed up in {WarmUpTime.TotalMilliseconds:F0} ms");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_model is not null)
        {
            await _model.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class OcrModelCollection : ICollectionFixture<OcrModelFixture>
{
    public const string Name = "OCR model";
}
