using System.Diagnostics;
using System.Globalization;
using Async.Serving.Redis;
using StackExchange.Redis;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// <see cref="RedisScript"/> against a Redis server of the test's own (a free loopback port, no
/// persistence), which it flushes and restarts: the services the other tests use are never touched.
/// </summary>
public sealed class RedisScriptTests : IAsyncLifetime
{
    private readonly int _port = ScriptRunner.FreePort();
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("serving-redis-script-");
    private ConnectionMultiplexer? _redis;

    // Unique text per test run, so that no server or client cache holds it from before.
    private readonly RedisScript _script = RedisScript.Prepare($"""
        -- RedisScriptTests {Guid.NewGuid():N}
        return redis.call('INCRBY', @counter, @by)
        """);

    public async Task InitializeAsync()
    {
        await StartServerAsync();
        _redis = await ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions
        {
            EndPoints = { { "127.0.0.1", _port } },
            AllowAdmin = true,
            AbortOnConnectFail = false,
            ConnectRetry = 10,
        });
    }

    public async Task DisposeAsync()
    {
        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }

        StopServer();
        _dir.Delete(recursive: true);
    }

    [Fact]
    public async Task Runs_by_hash_once_loaded_and_exactly_once_per_call_after_the_server_forgot_the_script()
    {
        var db = _redis!.GetDatabase();
        var server = _redis.GetServer("127.0.0.1", _port);
        var counter = new RedisKey("counter");

        Assert.Equal(1, (long)await _script.EvaluateAsync(db, new { counter, by = 1 }));
        await WaitUntilAsync(() => _script.IsLoaded);
        var byHashBefore = await EvalShaCallsAsync(server);
        Assert.Equal(2, (long)await _script.EvaluateAsync(db, new { counter, by = 1 }));
        Assert.Equal(byHashBefore + 1, await EvalShaCallsAsync(server));

        // The server forgets every script: the next call is refused by hash (NOSCRIPT, nothing run),
        // made again as text, and counted once.
        await server.ScriptFlushAsync();
        Assert.Equal(3, (long)await _script.EvaluateAsync(db, new { counter, by = 1 }));
        Assert.Equal(4, (long)await _script.EvaluateAsync(db, new { counter, by = 1 }));
        Assert.Equal(4, (long)await db.StringGetAsync(counter));

        // A restarted server (no persistence: the counter starts again) is reconnected to and the script runs.
        StopServer();
        await StartServerAsync();
        await WaitUntilAsync(() => _redis.GetServer("127.0.0.1", _port).IsConnected);
        Assert.Equal(5, (long)await RetryWhileReconnectingAsync(() => _script.EvaluateAsync(db, new { counter, by = 5 })));
        Assert.Equal(6, (long)await _script.EvaluateAsync(db, new { counter, by = 1 }));
    }

    [Fact]
    public async Task An_error_raised_by_the_script_is_not_taken_for_a_missing_script()
    {
        var db = _redis!.GetDatabase();
        var key = new RedisKey("not-a-number");
        await db.StringSetAsync(key, "text");

        var first = await Assert.ThrowsAsync<RedisServerException>(() => _script.EvaluateAsync(db, new { counter = key, by = 1 }));
        await WaitUntilAsync(() => _script.IsLoaded);
        var byHash = await Assert.ThrowsAsync<RedisServerException>(() => _script.EvaluateAsync(db, new { counter = key, by = 1 }));

        Assert.Contains("not an integer", first.Message, StringComparison.Ordinal);
        Assert.Contains("not an integer", byHash.Message, StringComparison.Ordinal);
        Assert.Equal("text", (string?)await db.StringGetAsync(key));
    }

    private static async Task<long> EvalShaCallsAsync(IServer server)
    {
        var stats = await server.InfoAsync("commandstats");
        var line = stats.SelectMany(g => g).FirstOrDefault(p => p.Key == "cmdstat_evalsha").Value;
        if (line is null)
        {
            return 0;
        }

        // calls=N,usec=...
        var calls = line.Split(',')[0].Split('=')[1];
        return long.Parse(calls, CultureInfo.InvariantCulture);
    }

    private static async Task<T> RetryWhileReconnectingAsync<T>(Func<Task<T>> call)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (RedisConnectionException) when (attempt < 50)
            {
                await Task.Delay(100);
            }
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The condition did not hold within 10 s.");
            await Task.Delay(20);
        }
    }

    private string PidFile => Path.Combine(_dir.FullName, "redis.pid");

    private async Task StartServerAsync()
    {
        using var start = Process.Start(new ProcessStartInfo("redis-server",
            ["--bind", "127.0.0.1", "--port", _port.ToString(CultureInfo.InvariantCulture), "--dir", _dir.FullName,
             "--save", "", "--appendonly", "no", "--daemonize", "yes", "--pidfile", PidFile])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        await start.WaitForExitAsync();
        Assert.Equal(0, start.ExitCode);
        await WaitUntilAsync(() => File.Exists(PidFile) && new FileInfo(PidFile).Length > 0);
    }

    private void StopServer()
    {
        if (!File.Exists(PidFile) || !int.TryParse(File.ReadAllText(PidFile).Trim(), out var pid))
        {
            return;
        }

        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
            process.WaitForExit(10_000);
        }
        catch (ArgumentException)
        {
            // Already gone.
        }

        File.Delete(PidFile);
    }
}
