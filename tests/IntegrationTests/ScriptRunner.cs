using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Async.Serving.IntegrationTests;

/// <summary>Runs a bash snippet that has sourced scripts/lib.sh, with its own state folder and environment.</summary>
internal static class ScriptRunner
{
    public sealed record Result(int ExitCode, string Output, string Error)
    {
        public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Output}\n--- stderr\n{Error}";
    }

    /// <summary>
    /// <paramref name="script"/> runs after <c>source scripts/lib.sh</c>, in <paramref name="workingDirectory"/>
    /// (default: the repository root), with <paramref name="environment"/> added; killed after <paramref name="timeout"/>.
    /// </summary>
    public static async Task<Result> RunAsync(string script, IDictionary<string, string> environment, TimeSpan timeout, string? workingDirectory = null)
    {
        var lib = Path.Combine(ServingFixture.RepoRoot, "scripts", "lib.sh");
        var start = new ProcessStartInfo("bash", ["-c", $"source '{lib}'\n{script}"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory ?? ServingFixture.RepoRoot,
        };
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            var (killedOutput, killedError) = await OutputsAsync(output, error);
            return new Result(-1, killedOutput, killedError + $"\n(killed after {timeout.TotalSeconds} s)");
        }

        var (stdout, stderr) = await OutputsAsync(output, error);
        return new Result(process.ExitCode, stdout, stderr);
    }

    /// <summary>
    /// What the script wrote, once its pipes close. A daemon it started (outside its process tree, so
    /// not killed with it) may hold them open; after 10 s the test goes on without them, rather than
    /// waiting for as long as that daemon lives.
    /// </summary>
    private static async Task<(string Output, string Error)> OutputsAsync(Task<string> output, Task<string> error)
    {
        try
        {
            await Task.WhenAll(output, error).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
            return (output.IsCompletedSuccessfully ? output.Result : "", (error.IsCompletedSuccessfully ? error.Result : "")
                + "\n(its output was still held open 10 s after it ended, by a process it started)");
        }

        return (await output, await error);
    }

    /// <summary>A loopback TCP port that nothing listens on right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
