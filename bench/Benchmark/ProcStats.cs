using System.Globalization;

namespace Async.Serving.Benchmark;

/// <summary>Reads per-process CPU time and memory from /proc (Linux only).</summary>
internal static class ProcStats
{
    /// <summary>Clock ticks per second of /proc/*/stat; 100 on every Linux this runs on.</summary>
    public const double TicksPerSecond = 100.0;

    /// <summary>utime + stime of a process in ticks, or 0 when it is gone.</summary>
    public static long CpuTicks(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // After "pid (comm) ": state is field 3, utime field 14, stime field 15.
            return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return 0;
        }
    }

    /// <summary>A field of /proc/&lt;pid&gt;/status in bytes (VmHWM, VmRSS), or null when unreadable.</summary>
    public static long? StatusBytes(int pid, string field)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
                {
                    var kb = line[(field.Length + 1)..].Trim().Split(' ')[0];
                    return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (IOException)
        {
        }

        return null;
    }

    /// <summary>
    /// Context switches of every thread of a process (voluntary: it waited; involuntary: it was
    /// preempted), summed over <c>/proc/&lt;pid&gt;/task/*/status</c>; threads that ended are not counted.
    /// </summary>
    public static long ContextSwitches(int pid)
    {
        long total = 0;
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                try
                {
                    foreach (var line in File.ReadLines(Path.Combine(task, "status")))
                    {
                        if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal) || line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal))
                        {
                            total += long.Parse(line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim(), CultureInfo.InvariantCulture);
                        }
                    }
                }
                catch (IOException)
                {
                    // the thread ended while being read
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return total;
    }

    /// <summary>Read and write system calls of a process (<c>syscr</c> + <c>syscw</c> of <c>/proc/&lt;pid&gt;/io</c>: every thread's, sockets included), or 0 when unreadable.</summary>
    public static long ReadWriteSyscalls(int pid)
    {
        try
        {
            return File.ReadLines($"/proc/{pid}/io")
                .Where(l => l.StartsWith("syscr:", StringComparison.Ordinal) || l.StartsWith("syscw:", StringComparison.Ordinal))
                .Sum(l => long.Parse(l[6..].Trim(), CultureInfo.InvariantCulture));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    /// <summary>Busy ticks of the whole machine (all CPUs, everything but idle and iowait).</summary>
    public static long MachineBusyTicks()
    {
        var first = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var values = first.Skip(1).Take(8).Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        return values.Sum() - values[3] - values[4];
    }

    /// <summary>Processes whose command name (/proc/&lt;pid&gt;/comm) is <paramref name="comm"/>.</summary>
    public static IReadOnlyList<int> FindByName(string comm)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                if (File.ReadAllText(Path.Combine(dir, "comm")).Trim() == comm)
                {
                    found.Add(pid);
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return found;
    }
}

/// <summary>CPU seconds spent by each party over a phase, on a machine of <see cref="Environment.ProcessorCount"/> cores.</summary>
internal sealed class CpuProfile
{
    private readonly Dictionary<string, int[]> _groups;
    private readonly Dictionary<string, Counters> _start;
    private readonly long _machineStart;
    private readonly long _wallStart = System.Diagnostics.Stopwatch.GetTimestamp();

    public CpuProfile(Dictionary<string, int[]> groups)
    {
        _groups = groups;
        _start = groups.ToDictionary(g => g.Key, g => Counters.Of(g.Value));
        _machineStart = ProcStats.MachineBusyTicks();
    }

    /// <summary>Seconds of CPU per party since construction, plus <c>other</c> (everything else on the machine) and the wall time.</summary>
    public CpuSplit Stop()
    {
        var wall = System.Diagnostics.Stopwatch.GetElapsedTime(_wallStart).TotalSeconds;
        var spent = _groups.ToDictionary(g => g.Key, g => Counters.Of(g.Value) - _start[g.Key]);
        var machine = (ProcStats.MachineBusyTicks() - _machineStart) / ProcStats.TicksPerSecond;
        var seconds = spent.ToDictionary(s => s.Key, s => s.Value.Ticks / ProcStats.TicksPerSecond);
        seconds["other"] = Math.Max(0, machine - seconds.Values.Sum());
        return new CpuSplit(Math.Round(wall, 2), Environment.ProcessorCount, Math.Round(machine, 2),
            seconds.ToDictionary(s => s.Key, s => Math.Round(s.Value, 2)),
            seconds.ToDictionary(s => s.Key, s => Math.Round(s.Value / (wall * Environment.ProcessorCount), 3)),
            spent.ToDictionary(s => s.Key, s => s.Value.Switches), spent.ToDictionary(s => s.Key, s => s.Value.Syscalls));
    }

    /// <summary>A group's CPU ticks, context switches and read/write system calls, summed over its processes.</summary>
    private readonly record struct Counters(long Ticks, long Switches, long Syscalls)
    {
        public static Counters Of(int[] pids) =>
            new(pids.Sum(ProcStats.CpuTicks), pids.Sum(ProcStats.ContextSwitches), pids.Sum(ProcStats.ReadWriteSyscalls));

        public static Counters operator -(Counters a, Counters b) => new(a.Ticks - b.Ticks, a.Switches - b.Switches, a.Syscalls - b.Syscalls);
    }
}

internal sealed record CpuSplit(
    double WallSeconds, int Cores, double MachineBusySeconds,
    Dictionary<string, double> CpuSeconds, Dictionary<string, double> ShareOfMachine,
    Dictionary<string, long> ContextSwitches, Dictionary<string, long> ReadWriteSyscalls);
