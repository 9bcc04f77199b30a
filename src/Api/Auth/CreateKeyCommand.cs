using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text.RegularExpressions;
using Npgsql;

namespace Async.Serving.Api.Auth;

/// <summary>
/// <c>Async.Serving.Api create-key &lt;tenant&gt; [name] [--name N] [--expires-days D]</c>: creates the
/// table if needed, stores a new key and prints only the key on stdout (one line), so that
/// <c>KEY=$(scripts/create-key.sh acme)</c> works; everything else goes to stderr.
/// </summary>
public static partial class CreateKeyCommand
{
    public const string Verb = "create-key";

    public const string Usage = "usage: create-key <tenant> [name] [--name N] [--expires-days D]";

    public sealed record Request(string Tenant, string Name, int? ExpiresDays);

    /// <summary>Run from Program.cs: configuration from appsettings.json beside the dll and the environment.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .Build();
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        return await RunAsync(args, configuration, Console.Out, Console.Error, cancel.Token).ConfigureAwait(false);
    }

    public static async Task<int> RunAsync(string[] args, IConfiguration configuration, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        if (!TryParse(args, out var request, out var error))
        {
            await stderr.WriteLineAsync($"{error}\n{Usage}").ConfigureAwait(false);
            return 2;
        }

        var connectionString = configuration.GetConnectionString("Postgres");
        if (string.IsNullOrEmpty(connectionString))
        {
            await stderr.WriteLineAsync("ConnectionStrings:Postgres is not set (environment ConnectionStrings__Postgres).").ConfigureAwait(false);
            return 1;
        }

        try
        {
            await using var dataSource = NpgsqlDataSource.Create(connectionString);
            var store = new ApiKeyStore(dataSource, TimeProvider.System);
            await store.MigrateAsync(cancellationToken).ConfigureAwait(false);
            var expiresAt = request.ExpiresDays is { } days ? DateTimeOffset.UtcNow.AddDays(days) : (DateTimeOffset?)null;
            var created = await store.CreateAsync(request.Tenant, request.Name, expiresAt, cancellationToken).ConfigureAwait(false);

            await stdout.WriteLineAsync(created.Key).ConfigureAwait(false);
            await stdout.FlushAsync(cancellationToken).ConfigureAwait(false);
            var record = created.Record;
            var expiry = record.ExpiresAt is { } at ? $"expires {at:yyyy-MM-ddTHH:mm:ssZ}" : "does not expire";
            await stderr.WriteLineAsync(
                $"Created API key {record.Id} '{record.Name}' ({record.KeyPrefix}…) for tenant '{record.TenantId}'; it {expiry}. " +
                "The key is shown only this once.").ConfigureAwait(false);
            return 0;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            await stderr.WriteLineAsync($"PostgreSQL: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>Tenant ids end up in Redis keys and logs: letters, digits, <c>.</c>, <c>_</c> and <c>-</c>, at most 64.</summary>
    public static bool TryParse(IReadOnlyList<string> args, [NotNullWhen(true)] out Request? request, [NotNullWhen(false)] out string? error)
    {
        request = null;
        string? tenant = null, name = null;
        int? expiresDays = null;
        for (var i = 0; i < args.Count; i++)
        {
            switch (args[i])
            {
                case "--name" when i + 1 < args.Count:
                    name = args[++i];
                    break;
                case "--expires-days" when i + 1 < args.Count:
                    if (!int.TryParse(args[++i], NumberStyles.None, CultureInfo.InvariantCulture, out var days) || days is < 1 or > 3650)
                    {
                        error = $"--expires-days must be a whole number of days from 1 to 3650, not '{args[i]}'.";
                        return false;
                    }

                    expiresDays = days;
                    break;
                case var option when option.StartsWith("--", StringComparison.Ordinal):
                    error = $"Unknown option or missing value: '{option}'.";
                    return false;
                case var value when tenant is null:
                    tenant = value;
                    break;
                case var value when name is null:
                    name = value;
                    break;
                default:
                    error = $"Unexpected argument '{args[i]}'.";
                    return false;
            }
        }

        if (tenant is null || !TenantPattern().IsMatch(tenant))
        {
            error = tenant is null ? "A tenant is required." : $"Tenant '{tenant}' is not valid: use 1 to 64 letters, digits, '.', '_' or '-'.";
            return false;
        }

        name = string.IsNullOrWhiteSpace(name) ? "default" : name.Trim();
        if (name.Length > 200)
        {
            error = "The name is longer than 200 characters.";
            return false;
        }

        request = new Request(tenant, name, expiresDays);
        error = null;
        return true;
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex TenantPattern();
}
