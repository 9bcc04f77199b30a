using System.Text.Json.Nodes;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// A model repository of its own holding a copy of resnet18 under a fresh name (the weights are a
/// symlink), so a test controls exactly which workers serve it: its jobs go to their own queue.
/// </summary>
public sealed class PrivateModels : IDisposable
{
    public PrivateModels(Action<JsonObject>? configure = null)
    {
        Name = "private" + Guid.NewGuid().ToString("N")[..8];
        var source = System.IO.Path.Combine(ServingFixture.ModelsPath, "resnet18", "1");
        var target = System.IO.Path.Combine(Path, Name, "1");
        Directory.CreateDirectory(target);
        var config = JsonNode.Parse(File.ReadAllText(System.IO.Path.Combine(source, "config.json")),
            documentOptions: new System.Text.Json.JsonDocumentOptions { CommentHandling = System.Text.Json.JsonCommentHandling.Skip })!.AsObject();
        configure?.Invoke(config);
        File.WriteAllText(System.IO.Path.Combine(target, "config.json"), config.ToJsonString());
        File.CreateSymbolicLink(System.IO.Path.Combine(target, "model.onnx"), System.IO.Path.Combine(source, "model.onnx"));
    }

    public string Path { get; } = Directory.CreateTempSubdirectory("private-models-").FullName;

    public string Name { get; }

    public string Queue => $"infer-{Name}-1";

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
