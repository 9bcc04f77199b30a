using System.Text.Json;
using Async.Serving.Contracts.Outputs;

namespace Async.Serving.Worker.Inference;

/// <summary>Writes a pipeline's typed output as the job's stored JSON, through the contract's source-generated context.</summary>
internal static class JobOutputs
{
    public static string Serialize(JobOutput output) => JsonSerializer.Serialize(output, JobOutputJsonContext.Default.JobOutput);
}
