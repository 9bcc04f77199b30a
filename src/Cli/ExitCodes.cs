namespace Async.Serving.Cli;

/// <summary>The process exit codes of <c>serving</c>, documented in docs/clients.md.</summary>
public static class ExitCodes
{
    /// <summary>Everything asked for was done (every submitted job succeeded).</summary>
    public const int Ok = 0;

    /// <summary>At least one job failed, was cancelled or expired, or one input was refused by the API.</summary>
    public const int JobFailed = 1;

    /// <summary>The command line was wrong: an unknown option, a missing URL or key, an input that matched nothing.</summary>
    public const int Usage = 2;

    /// <summary>The API answered with a problem (401, 404, 409, 503 …) or could not be reached.</summary>
    public const int ApiError = 3;

    /// <summary>Interrupted by Ctrl-C (128 + SIGINT); submitted jobs stay on the server and a rerun resumes.</summary>
    public const int Interrupted = 130;
}

/// <summary>A mistake on the command line, reported with <see cref="ExitCodes.Usage"/>.</summary>
public sealed class CliUsageException(string message) : Exception(message);
