using Async.Serving.Contracts;
using Async.Serving.Contracts.Outputs;
using Async.Serving.Jobs;
using Async.Serving.Models;
using Async.Serving.Worker.Consumers;
using Async.Serving.Worker.Inference;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The fixture worker's consumer over the real job store, with a pipeline that throws what no
/// pipeline should: an unexpected error is retried (the consume throws, the job stays running) until
/// the last attempt allowed, which ends the job <c>internal_error</c> naming the error, rather than
/// being retried into a start that could only say a worker had died.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class ConsumerFaultTests(ServingFixture serving)
{
    [Fact]
    public async Task An_unexpected_error_is_retried_and_on_the_last_attempt_ends_the_job_naming_it()
    {
        var store = serving.Api.Services.GetRequiredService<RedisJobStore>();
        var workers = serving.Worker.Services;
        var maxAttempts = workers.GetRequiredService<IOptions<WorkerOptions>>().Value.MaxAttempts;
        var pipeline = new Throwing();
        var consumer = ActivatorUtilities.CreateInstance<RunInferenceConsumer>(workers, new PipelineRegistry([pipeline]));
        var job = new JobRecord
        {
            Id = RedisJobStore.NewJobId(),
            TenantId = serving.Tenant,
            Status = JobStatuses.Queued,
            Pipeline = Throwing.PipelineName,
            Model = "resnet18@1",
            CreatedAt = DateTimeOffset.UtcNow,
        };
        await store.CreateAsync(job, new byte[] { 1, 2, 3 });
        var message = new RunInference
        {
            JobId = job.Id,
            TenantId = job.TenantId,
            Pipeline = job.Pipeline,
            Model = "resnet18",
            ModelVersion = "1",
            InputKey = "",
            SubmittedAt = job.CreatedAt,
            TimeoutSeconds = 60,
        };

        for (var attempt = 1; attempt < maxAttempts; attempt++)
        {
            await Assert.ThrowsAsync<InvalidDataException>(() => consumer.RunAsync(message, CancellationToken.None));
            var running = (await store.GetAsync(job.Id))!;
            Assert.Equal((JobStatuses.Running, attempt), (running.Status, running.Attempts));
        }

        await consumer.RunAsync(message, CancellationToken.None);

        var failed = (await store.GetAsync(job.Id))!;
        Assert.Equal((JobStatuses.Failed, JobErrorCodes.InternalError, maxAttempts), (failed.Status, failed.ErrorCode, failed.Attempts));
        Assert.Contains($"(InvalidDataException) on its last attempt ({maxAttempts} of {maxAttempts})", failed.ErrorMessage, StringComparison.Ordinal);
        Assert.DoesNotContain(Throwing.Secret, failed.ErrorMessage, StringComparison.Ordinal); // the text stays in the log
        Assert.Equal(maxAttempts, pipeline.Runs);

        // A redelivery of the failed job changes nothing and runs nothing.
        await consumer.RunAsync(message, CancellationToken.None);
        Assert.Equal(maxAttempts, pipeline.Runs);
        Assert.Equal(JobStatuses.Failed, (await store.GetAsync(job.Id))!.Status);
    }

    /// <summary>An <c>image.embed</c> pipeline serving resnet18@1 whose every run throws an exception it should not.</summary>
    private sealed class Throwing : IPipeline
    {
        public const string PipelineName = PipelineNames.ImageEmbed;

        public const string Secret = "/var/lib/serving/internal-path";

        private int _runs;

        public int Runs => _runs;

        public string Name => PipelineName;

        public IEnumerable<(ModelEntry Entry, string Provider)> Served => [];

        public bool Serves(string modelId) => modelId == "resnet18@1";

        public ModelLoad Load(ModelEntry entry) => throw new NotSupportedException();

        public Task<string> RunAsync(string modelId, JobInputSource input, RunInference job, IJobProgress progress, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _runs);
            throw new InvalidDataException($"A fault with an internal detail: {Secret}.");
        }

        public ValueTask UnloadAsync() => ValueTask.CompletedTask;
    }
}
