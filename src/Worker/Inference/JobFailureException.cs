namespace Async.Serving.Worker.Inference;

/// <summary>A job-level failure with the code the client sees in <c>error.code</c>; never a worker failure.</summary>
public sealed class JobFailureException(string code, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public string Code { get; } = code;
}
