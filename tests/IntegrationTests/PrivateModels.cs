using System.Text.Json.Nodes;
using Microsoft.Extensions.Hosting;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// A model repository of its own holding a copy of resnet18 under a fresh name (the weights are a
/// symlink), so a test controls exactly which workers serve it: its jobs go to their own queue.
/// With <c>video: true</c> it also holds <see cref="VideoName"/>, a video model over that copy
/// taking videos of at most <c>maxVideoSeconds</c>. With <c>versions: n</c> the name has versions 1 to n,
/// each the same copy (for routing between versions).
/// </summary>
public sealed class PrivateModels : IDisposable
{
    public PrivateModels(Action<JsonObject>? configure = null, bool video = false, double maxVideoSeconds = 3600, int versions = 1)
    {
        Name = "private" + Guid.NewGuid().ToString("N")[..8];
        var source = System.IO.Path.Combine(ServingFixture.ModelsPath, "resnet18", "1");
        var config = JsonNode.Parse(File.ReadAllText(System.IO.Path.Combine(source, "config.json")),
            documentOptions: new System.Text.Json.JsonDocumentOptions { CommentHandling = System.Text.Json.JsonCommentHandling.Skip })!.AsObject();
        configure?.Invoke(config);
        for (var version = 1; version <= versions; version++)
        {
            var target = System.IO.Path.Combine(Path, Name, version.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Directory.CreateDirectory(target);
            File.WriteAllText(System.IO.Path.Combine(target, "config.json"), config.ToJsonString());
            File.CreateSymbolicLink(System.IO.Path.Combine(target, "model.onnx"), System.IO.Path.Combine(source, "model.onnx"));
        }
        if (video)
        {
            var videoDir = System.IO.Path.Combine(Path, VideoName, "1");
            Directory.CreateDirectory(videoDir);
            File.WriteAllText(System.IO.Path.Combine(videoDir, "config.json"),
                $$"""{ "pipeline": "video.analyze", "video": { "embedding_model": "{{Name}}@1", "max_duration_seconds": {{maxVideoSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}} } }""");
        }
    }

    public string Path { get; } = Directory.CreateTempSubdirectory("private-models-").FullName;

    public string Name { get; }

    public string VideoName => Name + "-video";

    public string Queue => $"infer-{Name}-1";

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

/// <summary>
/// <see cref="PrivateModels"/> with a worker of this build serving them, for a test class's
/// lifetime: <c>await using</c>, or started in <c>InitializeAsync</c> and disposed in <c>DisposeAsync</c>.
/// </summary>
public sealed class PrivateWorker : IAsyncDisposable
{
    private readonly IHost _host;

    /// <param name="versions">Versions of the private model (for routing between them).</param>
    /// <param name="overrides">Configuration of the worker (for example its model breaker's settings).</param>
    public PrivateWorker(int versions = 1, IDictionary<string, string?>? overrides = null)
    {
        Models = new PrivateModels(versions: versions);
        _host = ServingFixture.BuildWorker(Models.Path, overrides);
    }

    public PrivateModels Models { get; }

    /// <summary>The worker's services (its loaded models, for a test that makes one fail).</summary>
    public IServiceProvider Services => _host.Services;

    public Task StartAsync() => _host.StartAsync();

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync(TimeSpan.FromSeconds(30));
        _host.Dispose();
        Models.Dispose();
    }
}
