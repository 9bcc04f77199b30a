namespace Async.Serving.Jobs;

/// <summary>Codes a failed job carries in <c>error.code</c>.</summary>
public static class JobErrorCodes
{
    public const string InputInvalid = "input_invalid";
    public const string InputMissing = "input_missing";
    public const string InputTooLarge = "input_too_large";
    public const string InferenceFailed = "inference_failed";
    public const string Timeout = "timeout";
    public const string InternalError = "internal_error";

    /// <summary>The job's model version is marked unavailable by its circuit breaker (its batches kept failing); the job was not run.</summary>
    public const string ModelUnavailable = "model_unavailable";
}
