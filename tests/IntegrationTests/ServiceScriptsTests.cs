namespace Async.Serving.IntegrationTests;

/// <summary>
/// The service start-up of scripts/lib.sh (what scripts/up.sh runs), each test on its own free
/// ports and state folder, so the services the test run uses are never touched; what a test starts
/// it stops. Needs root, like the scripts (PostgreSQL runs as the postgres user through runuser).
/// </summary>
public sealed class ServiceScriptsTests : IDisposable
{
    private static readonly TimeSpan ScriptTimeout = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Defines <c>cli</c> and <c>settings</c> (the Redis on <c>$REDIS_PORT</c>) and <c>started</c> (waits
    /// until it answers); Redis is stopped with lib.sh's <c>stop_pid</c>, as <c>scripts/down.sh</c> stops it.
    /// </summary>
    private const string Helpers = """
        cli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
        setting() { cli CONFIG GET "$1" | sed -n 2p; }
        settings() { echo "appendonly=$(setting appendonly) appendfsync=$(setting appendfsync) policy=$(setting maxmemory-policy) maxmemory=$(setting maxmemory)"; }
        started() { until [ "$(cli ping 2>/dev/null)" = PONG ]; do sleep 0.1; done; }

        """;
    private readonly DirectoryInfo _state = Directory.CreateTempSubdirectory("serving-state-");

    public ServiceScriptsTests()
    {
        // Like a checkout in root's home (mode 0700): the postgres user cannot enter it.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(_state.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    public void Dispose() => _state.Delete(recursive: true);

    private Dictionary<string, string> Settings(int? redisPort = null, int? pgPort = null) => new()
    {
        ["SERVING_STATE_DIR"] = _state.FullName,
        ["SERVING_REDIS_PORT"] = (redisPort ?? ScriptRunner.FreePort()).ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["SERVING_PG_PORT"] = (pgPort ?? ScriptRunner.FreePort()).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    [Fact]
    public async Task Redis_started_by_the_scripts_keeps_acknowledged_writes_across_a_restart_and_never_evicts()
    {
        var result = await ScriptRunner.RunAsync(Helpers + """
            trap 'stop_pid redis "$STATE/redis.pid"' EXIT
            start_redis
            cli SET job:durable finished >/dev/null
            settings
            stop_pid redis "$STATE/redis.pid"
            start_redis
            echo "after restart: $(cli GET job:durable)"
            """, Settings(), ScriptTimeout);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("appendonly=yes appendfsync=everysec policy=noeviction maxmemory=", result.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("maxmemory=0", result.Output, StringComparison.Ordinal);
        Assert.Contains("after restart: finished", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_running_Redis_without_persistence_is_switched_to_AOF_and_a_memory_cap()
    {
        var port = ScriptRunner.FreePort();
        var result = await ScriptRunner.RunAsync(Helpers + $"""
            redis-server --bind 127.0.0.1 --port {port} --dir "$STATE" --daemonize yes --pidfile "$STATE/old-redis.pid" --save '' --appendonly no 4>&-
            trap 'stop_pid "the running Redis" "$STATE/old-redis.pid"' EXIT
            started
            start_redis
            settings
            """, Settings(redisPort: port), ScriptTimeout);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("appendonly=yes appendfsync=everysec policy=noeviction maxmemory=", result.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("maxmemory=0", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PostgreSQL_starts_for_a_checkout_the_postgres_user_cannot_enter()
    {
        var port = ScriptRunner.FreePort();
        // Started from inside the unreachable folder, as up.sh is from a clone in root's home.
        var result = await ScriptRunner.RunAsync($$"""
            trap 'pg_ctl_stop; [ -s "$STATE/postgres.datadir" ] && rm -rf "$(cat "$STATE/postgres.datadir")"' EXIT
            pg_ctl_stop() { [ -s "$STATE/postgres.datadir" ] && (cd / && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$(cat "$STATE/postgres.datadir")" -m fast -w stop >/dev/null 2>&1) || true; }
            start_postgres
            pg_isready -h 127.0.0.1 -p {{port}}
            psql -h 127.0.0.1 -p {{port}} -U postgres -tAc "SELECT 'database serving: ' || count(*) FROM pg_database WHERE datname = 'serving'"
            stop_postgres
            pg_isready -q -h 127.0.0.1 -p {{port}} || echo "stopped"
            """, Settings(pgPort: port), ScriptTimeout, workingDirectory: _state.FullName);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("accepting connections", result.Output, StringComparison.Ordinal);
        Assert.Contains("database serving: 1", result.Output, StringComparison.Ordinal);
        Assert.Contains("stopped", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migration_to_quorum_queues_deletes_an_empty_classic_job_queue_and_stops_at_one_holding_messages()
    {
        using var rabbit = new RabbitManagement("serving-migrate-" + Guid.NewGuid().ToString("N")[..8]);
        await rabbit.CreateVirtualHostAsync();
        try
        {
            await rabbit.DeclareQueueAsync("infer-empty-1");
            await rabbit.DeclareQueueAsync("infer-busy-1");
            await rabbit.PublishToQueueAsync("infer-busy-1", "{}");
            await rabbit.DeclareQueueAsync("infer-empty-1_error");
            await rabbit.DeclareQueueAsync("infer-current-1", new Dictionary<string, string> { ["x-queue-type"] = "quorum" });

            var result = await ScriptRunner.RunAsync($"migrate_job_queues '{rabbit.VirtualHost}'", Settings(), ScriptTimeout);

            Assert.True(result.ExitCode == 1, result.ToString());
            Assert.Contains("infer-busy-1", result.Error, StringComparison.Ordinal);
            Assert.Null(await rabbit.GetQueueAsync("infer-empty-1"));
            Assert.Equal("classic", await rabbit.QueueTypeAsync("infer-busy-1"));
            Assert.Equal("classic", await rabbit.QueueTypeAsync("infer-empty-1_error")); // not a job queue
            Assert.Equal("quorum", await rabbit.QueueTypeAsync("infer-current-1"));
        }
        finally
        {
            await rabbit.DeleteVirtualHostAsync();
        }
    }
}
