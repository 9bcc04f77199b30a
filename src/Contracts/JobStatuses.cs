namespace Async.Serving.Contracts;

/// <summary>
/// The job states of the public contract, as the job store, the API, webhooks and the client write
/// them: queued, running, then one of the terminal four.
/// </summary>
public static class JobStatuses
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
    public const string Expired = "expired";

    /// <summary>True for succeeded, failed, cancelled and expired: nothing changes the job afterwards.</summary>
    public static bool IsTerminal(string? status) => status is Succeeded or Failed or Cancelled or Expired;
}
