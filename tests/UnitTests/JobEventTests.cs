using System.Text;
using System.Text.Json;
using Async.Serving.Api.DeadLetters;
using Async.Serving.Api.Webhooks;
using Async.Serving.Jobs;

namespace Async.Serving.UnitTests;

public sealed class JobEventTests
{
    private static readonly DateTimeOffset Created = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);

    private static JobRecord Finished => new()
    {
        Id = "j1",
        TenantId = "t",
        Status = JobStatuses.Succeeded,
        Pipeline = "image.embed",
        Model = "resnet18@1",
        CreatedAt = Created,
        StartedAt = Created.AddSeconds(5),
        CompletedAt = Created.AddSeconds(6),
        QueueMs = 5000,
        ExecutionMs = 1000,
        Progress = 1,
        Attempts = 2,
        OutputJson = """{"dims":1}""",
        ResultExpiresAt = Created.AddDays(1),
    };

    [Fact]
    public void Ids_are_stable_per_event_and_distinct_across_attempts_and_rounds()
    {
        JobEvent E(string type, int attempt = 1, double progress = 0, int round = 0) =>
            new("j1", type, "running", Created, attempt, progress, null, round);

        Assert.Equal("msg_j1_started", E("started").MessageId);
        Assert.Equal("msg_j1_started_2", E("started", attempt: 2).MessageId);
        Assert.Equal("msg_j1_progress_250", E("progress", progress: 0.25).MessageId);
        Assert.Equal("msg_j1_progress_250_3", E("progress", attempt: 3, progress: 0.25).MessageId);
        Assert.Equal("msg_j1_completed", E("completed").MessageId);
        Assert.Equal("msg_j1_completed_1", E("completed", round: 1).MessageId);
    }

    [Fact]
    public void A_start_shows_the_running_job_of_its_attempt_even_once_the_job_has_ended()
    {
        var startedAt = Created.AddSeconds(2);
        var view = new JobEvent("j1", "started", "running", startedAt, 1, 0, null, 0).View(Finished);

        Assert.Equal(JobStatuses.Running, view.Status);
        Assert.Equal(startedAt, view.StartedAt);
        Assert.Equal(2000, view.QueueMs);
        Assert.Equal(1, view.Attempts);
        Assert.Null(view.OutputJson);
        Assert.Null(view.CompletedAt);
        Assert.Equal(0, view.Progress);

        var progress = new JobEvent("j1", "progress", "running", Created.AddSeconds(3), 1, 0.5, startedAt, 0).View(Finished);
        Assert.Equal(0.5, progress.Progress);
        Assert.Equal(startedAt, progress.StartedAt);

        Assert.Same(Finished.OutputJson, new JobEvent("j1", "completed", "succeeded", Created, 1, 0, null, 0).View(Finished).OutputJson);
    }

    [Theory]
    [InlineData("""{"messageId":"x","messageType":["urn:message:Async.Serving.Contracts:RunInference"],"message":{"jobId":"0192abc","tenantId":"t"}}""", "0192abc")]
    [InlineData("""{"jobId":"0192abd","tenantId":"t"}""", "0192abd")]
    [InlineData("""{"message":{"jobId":"../../etc"}}""", null)]
    [InlineData("""{"message":{"jobId":42}}""", null)]
    [InlineData("""[1,2,3]""", null)]
    [InlineData("""not json at all""", null)]
    [InlineData("", null)]
    public void A_dead_letter_names_its_job_only_when_it_really_does(string body, string? expected)
    {
        var jobs = DeadLetterSweeper.ReadJobs(Encoding.UTF8.GetBytes(body));
        Assert.Equal(expected, jobs.SingleOrDefault().JobId);
        Assert.Equal(expected is null, jobs.Count == 0);
    }

    [Fact]
    public void A_dead_letter_of_several_jobs_names_each_with_its_own_message()
    {
        var body = """{"messageType":["urn:message:Async.Serving.Contracts:RunInferenceBatch"],"message":{"jobs":[{"jobId":"0192abc","tenantId":"t"},{"jobId":"0192abd","tenantId":"u"}]}}""";
        var jobs = DeadLetterSweeper.ReadJobs(Encoding.UTF8.GetBytes(body));
        Assert.Equal(["0192abc", "0192abd"], jobs.Select(j => j.JobId));
        Assert.Equal("u", JsonDocument.Parse(jobs[1].MessageJson).RootElement.GetProperty("tenantId").GetString());

        // One job that names none makes the whole message unreadable (parked, never half-handled).
        Assert.Empty(DeadLetterSweeper.ReadJobs(Encoding.UTF8.GetBytes("""{"message":{"jobs":[{"jobId":"0192abc"},{"jobId":"../x"}]}}""")));
    }

    [Theory]
    [InlineData("infer-resnet18-1_error", "infer-resnet18-1")]
    [InlineData("infer-resnet18-1_skipped", "infer-resnet18-1")]
    [InlineData("infer-resnet18-1", "infer-resnet18-1")]
    public void A_requeue_goes_to_the_model_queue_of_the_dead_letter_queue(string deadLetterQueue, string expected) =>
        Assert.Equal(expected, DeadLetterRequeue.MainQueue(deadLetterQueue));
}
