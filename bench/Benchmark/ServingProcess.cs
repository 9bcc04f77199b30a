using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Async.Serving.Benchmark;

/// <summary>The API or a worker as a real child process, its output teed into a log file.</summary>
internal sealed class ServingProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string? _readyLine;
    private bool _closed;

    private ServingProcess(string name, Process process, StreamWriter log, string? readyLine)
    {
        Name = name;
        _process = process;
        _log = log;
        _readyLine = readyLine;
    }

    public string Name { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>
    /// Set for the benchmark process by <c>scripts/bench.sh</c>: the load client's socket completions
    /// run on the runtime's socket threads instead of being handed to the thread pool (about 19 context
    /// switches per job fewer, a fifth less client CPU), so that the load generator takes less of the
    /// cores it shares with what it measures. Removed from the environment of the processes it starts.
    /// </summary>
    public const string LoadClientInlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>Starts <c>dotnet &lt;dll&gt;</c> with the dll's folder as working directory (its content root).</summary>
    public static ServingProcess Start(string name, string dll, IReadOnlyDictionary<string, string> environment, string logPath, string? readyLine = null)
    {
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException($"{dll} is missing: build the solution in Release first.", dll);
        }

        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = Path.GetDirectoryName(dll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        // The load client's own setting (scripts/bench.sh): the API and the worker run as deployed.
        info.Environment.Remove(LoadClientInlineCompletions);
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(logPath)!);
        var log = new StreamWriter(logPath, append: false) { AutoFlush = true };
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var serving = new ServingProcess(name, process, log, readyLine);
        process.OutputDataReceived += (_, e) => serving.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => serving.OnLine(e.Data);
        process.Exited += (_, _) => serving._ready.TrySetException(new InvalidOperationException($"{name} exited while starting (see {logPath})."));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return serving;
    }

    /// <summary>Completes when the ready line is printed; throws when the process exits first or the time is up.</summary>
    public Task WaitReadyAsync(TimeSpan timeout) => _ready.Task.WaitAsync(timeout);

    /// <summary>SIGTERM, a grace period, then kill.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return;
        }

        using (var term = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await term.WaitForExitAsync().ConfigureAwait(false);
        }

        using var timeout = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
        lock (_gate)
        {
            _closed = true;
            _log.Dispose();
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            if (!_closed)
            {
                _log.WriteLine(line);
            }
        }

        if (_readyLine is not null && line.Contains(_readyLine, StringComparison.Ordinal))
        {
            _ready.TrySetResult();
        }
    }
}
