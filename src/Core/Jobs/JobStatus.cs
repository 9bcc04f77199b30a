namespace Async.Serving.Jobs;

/// <summary>The job states of the public contract, as they are written in the job store and in JSON.</summary>
public static class JobStatus
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
    public const string Expired = "expired";

    public static bool IsTerminal(string status) =>
        status is Succeeded or Failed or Cancelled or Expired;
}
