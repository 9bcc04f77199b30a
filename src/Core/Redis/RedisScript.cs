using StackExchange.Redis;

namespace Async.Serving.Redis;

/// <summary>
/// A Lua script with named parameters (<see cref="LuaScript"/>: <c>@name</c> in the text, members of a
/// parameter object in the call) that runs by its SHA1 (<c>EVALSHA</c> of a <see cref="LoadedLuaScript"/>).
/// </summary>
/// <remarks>
/// StackExchange.Redis's own path for a script given as text looks the text up in a table on every call,
/// which hashes the whole text each time: several KB for the job store's scripts, about 4 % of the
/// worker's CPU (docs/benchmarks.md, "Fourth round"). A loaded script sends the hash it holds. A server
/// that does not know the hash (restarted, <c>SCRIPT FLUSH</c>, a replica promoted, a cluster node that
/// has not run it yet) answers <c>NOSCRIPT</c> without running anything; StackExchange.Redis then loads
/// the script there and sends it once more, and should that error reach this class instead, the call is
/// made again through the text path, which does the same. The calls after it go by hash again.
/// </remarks>
public sealed class RedisScript
{
    private readonly LuaScript _script;
    private LoadedLuaScript? _loaded;
    private int _loading;

    private RedisScript(LuaScript script) => _script = script;

    /// <summary>The script for <paramref name="text"/>, whose <c>@name</c> parameters are filled from the parameter object of each call.</summary>
    public static RedisScript Prepare(string text) => new(LuaScript.Prepare(text));

    /// <summary>Whether calls go by hash (the script was loaded once by this process).</summary>
    public bool IsLoaded => Volatile.Read(ref _loaded) is not null;

    /// <summary>Runs the script on <paramref name="db"/> with the keys and arguments of <paramref name="parameters"/>.</summary>
    public Task<RedisResult> EvaluateAsync(IDatabaseAsync db, object? parameters = null) =>
        Volatile.Read(ref _loaded) is { } loaded ? ByHashAsync(loaded, db, parameters) : ByTextAsync(db, parameters);

    private async Task<RedisResult> ByHashAsync(LoadedLuaScript loaded, IDatabaseAsync db, object? parameters)
    {
        try
        {
            return await loaded.EvaluateAsync(db, parameters).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (IsNoScript(ex))
        {
            // Nothing ran: the text path loads the script on the server that answered and runs it there.
            return await _script.EvaluateAsync(db, parameters).ConfigureAwait(false);
        }
    }

    private async Task<RedisResult> ByTextAsync(IDatabaseAsync db, object? parameters)
    {
        try
        {
            return await _script.EvaluateAsync(db, parameters).ConfigureAwait(false);
        }
        finally
        {
            // Also after an error the script raised: its text reached a server, so a server is up.
            if (Interlocked.Exchange(ref _loading, 1) == 0)
            {
                _ = LoadAsync(db.Multiplexer);
            }
        }
    }

    /// <summary>Loads the script on a primary once to learn its hash (the same on every server); until then calls take the text path.</summary>
    private async Task LoadAsync(IConnectionMultiplexer multiplexer)
    {
        try
        {
            var server = multiplexer.GetServers().FirstOrDefault(s => s.IsConnected && !s.IsReplica);
            if (server is not null)
            {
                Volatile.Write(ref _loaded, await _script.LoadAsync(server).ConfigureAwait(false));
                return;
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or InvalidOperationException or ObjectDisposedException)
        {
            // Tried again on a later call.
        }

        Volatile.Write(ref _loading, 0);
    }

    private static bool IsNoScript(RedisServerException ex) => ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal);
}
