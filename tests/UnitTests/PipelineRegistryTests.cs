using Async.Serving.Contracts.Outputs;
using Async.Serving.Models;
using Async.Serving.Worker.Inference;

namespace Async.Serving.UnitTests;

public sealed class PipelineRegistryTests
{
    [Fact]
    public void Find_answers_only_for_a_model_loaded_under_that_pipeline()
    {
        var embed = new FakePipeline(PipelineNames.ImageEmbed);
        var ocr = new FakePipeline(PipelineNames.ImageOcr);
        embed.Load(Entry("resnet18", PipelineNames.ImageEmbed));
        ocr.Load(Entry("ppocr", PipelineNames.ImageOcr));
        var registry = new PipelineRegistry([embed, ocr]);

        Assert.Same(embed, registry.Find(PipelineNames.ImageEmbed, "resnet18@1"));
        Assert.Same(embed, registry.Find(PipelineNames.ImageEmbed, "ResNet18@1"));
        Assert.Same(ocr, registry.Find(PipelineNames.ImageOcr, "ppocr@1"));
        Assert.Null(registry.Find(PipelineNames.ImageEmbed, "ppocr@1"));
        Assert.Null(registry.Find(PipelineNames.ImageEmbed, "resnet18@2"));
        Assert.Null(registry.Find(PipelineNames.VideoAnalyze, "resnet18@1"));
        Assert.Null(registry.Find("image.unknown", "resnet18@1"));
        Assert.Equal([PipelineNames.ImageEmbed, PipelineNames.ImageOcr], registry.All.Select(p => p.Name));
    }

    [Fact]
    public void Two_pipelines_of_one_name_are_refused()
    {
        var error = Assert.Throws<InvalidOperationException>(() =>
            new PipelineRegistry([new FakePipeline(PipelineNames.ImageEmbed), new FakePipeline(PipelineNames.ImageEmbed)]));

        Assert.Contains(PipelineNames.ImageEmbed, error.Message);
    }

    [Fact]
    public async Task Unload_disposes_the_loaded_models_and_serves_none_after()
    {
        var pipeline = new FakePipeline(PipelineNames.ImageEmbed);
        pipeline.Load(Entry("a", PipelineNames.ImageEmbed));
        pipeline.Load(Entry("b", PipelineNames.ImageEmbed));
        var models = new[] { pipeline.Get("a@1")!, pipeline.Get("b@1")! };
        Assert.Equal(["a@1", "b@1"], pipeline.Served.Select(m => m.Entry.Id));

        await pipeline.UnloadAsync();

        Assert.All(models, m => Assert.True(m.Disposed));
        Assert.Empty(pipeline.Served);
        Assert.False(pipeline.Serves("a@1"));
    }

    private static ModelEntry Entry(string name, string pipeline) => new(name, "1", "/nonexistent", new ModelConfig { Pipeline = pipeline });

    private sealed class FakeModel : IAsyncDisposable
    {
        public bool Disposed { get; private set; }

        public ValueTask DisposeAsync()
        {
            Disposed = true;
            return ValueTask.CompletedTask;
        }
    }

    private sealed class FakePipeline(string name) : Pipeline<FakeModel>
    {
        public override string Name => name;

        protected override (FakeModel Model, ModelLoad Load) LoadModel(ModelEntry entry) =>
            (new FakeModel(), new ModelLoad("cpu", TimeSpan.Zero, TimeSpan.Zero, []));

        protected override Task<string> RunJobAsync(FakeModel model, byte[] input, RunInference job, IJobProgress progress, CancellationToken cancellationToken) =>
            Task.FromResult("{}");
    }
}
