namespace Async.Serving.Contracts;

/// <summary>
/// What an <c>Idempotency-Key</c> (of <c>POST /v1/jobs</c> and <c>POST /v1/batches</c>) may be: 1 to
/// <see cref="MaxLength"/> characters from space to <c>~</c>, what a header value may safely hold. The
/// API refuses any other with 400 <c>input_invalid</c>; the command-line tool checks the same rule first.
/// </summary>
public static class IdempotencyKeyRule
{
    public const int MaxLength = 255;

    public static bool IsWellFormed(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return key.Length is > 0 and <= MaxLength && !key.AsSpan().ContainsAnyExceptInRange(' ', '~');
    }
}
