using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Npgsql;
using NpgsqlTypes;

namespace Async.Serving.Api.Auth;

/// <summary>A row of <c>api_keys</c>; the key itself is never stored, only its SHA-256.</summary>
public sealed record ApiKeyRecord(
    Guid Id,
    string TenantId,
    string Name,
    string KeyPrefix,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset? RevokedAt,
    bool Admin = true,
    DateTimeOffset? LastUsedAt = null)
{
    public bool IsValidAt(DateTimeOffset now) => RevokedAt is null && (ExpiresAt is null || now < ExpiresAt);
}

/// <summary>A key just created: <see cref="Key"/> is shown once and cannot be recovered later.</summary>
public sealed record CreatedApiKey(string Key, ApiKeyRecord Record);

/// <summary>API keys in PostgreSQL, table <c>api_keys</c>.</summary>
public sealed class ApiKeyStore(NpgsqlDataSource dataSource, TimeProvider clock)
{
    public const string Prefix = "sk_live_";

    /// <summary><see cref="Prefix"/> plus 32 random bytes in base64url (43 characters).</summary>
    public const int KeyLength = 8 + 43;

    /// <summary>How much of a key is stored in clear, so that a person can tell keys apart.</summary>
    public const int DisplayPrefixLength = 12;

    // Any number works, as long as nothing else in the database takes the same advisory lock.
    private const long MigrationLock = 0x61_70_69_6b_65_79_73; // "apikeys"

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS api_keys (
            id          uuid        PRIMARY KEY,
            tenant_id   text        NOT NULL,
            name        text        NOT NULL,
            key_prefix  text        NOT NULL,
            key_hash    bytea       NOT NULL UNIQUE,
            created_at  timestamptz NOT NULL,
            expires_at  timestamptz NULL,
            revoked_at  timestamptz NULL
        );
        CREATE INDEX IF NOT EXISTS api_keys_tenant_id ON api_keys (tenant_id);
        -- The admin scope (the key management routes). Keys made before it existed were all made by
        -- operators with create-key, so they keep full powers.
        ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS admin boolean NOT NULL DEFAULT true;
        -- When the key last authenticated, to about a minute (ApiKeyUsage); null for keys never used since.
        ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS last_used_at timestamptz NULL;
        """;

    private const string Columns = "id, tenant_id, name, key_prefix, created_at, expires_at, revoked_at, admin, last_used_at";

    /// <summary>A new random key: 256 bits from the OS generator.</summary>
    public static string NewKey() => Prefix + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    /// <summary>
    /// SHA-256 of the key. A fast, unsalted hash is right here, unlike for passwords: keys are 256
    /// random bits, so neither a dictionary nor brute force gets anywhere, and a fast hash keeps the
    /// lookup a single indexed equality.
    /// </summary>
    public static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    /// <summary>Whether <paramref name="key"/> could have come from <see cref="NewKey"/>: others are refused without a query.</summary>
    public static bool IsWellFormed(string key) =>
        key.Length == KeyLength && key.StartsWith(Prefix, StringComparison.Ordinal) && Base64Url.IsValid(key.AsSpan(Prefix.Length));

    /// <summary>Creates the table when missing. Safe to run from several processes at once.</summary>
    public Task MigrateAsync(CancellationToken cancellationToken) =>
        Storage.PostgresSchema.EnsureAsync(dataSource, MigrationLock, Schema, cancellationToken);

    /// <summary>A new admin key (what <c>create-key</c> makes).</summary>
    public Task<CreatedApiKey> CreateAsync(string tenantId, string name, DateTimeOffset? expiresAt, CancellationToken cancellationToken) =>
        CreateAsync(tenantId, name, expiresAt, admin: true, cancellationToken);

    public async Task<CreatedApiKey> CreateAsync(string tenantId, string name, DateTimeOffset? expiresAt, bool admin, CancellationToken cancellationToken)
    {
        var key = NewKey();
        var record = new ApiKeyRecord(
            Guid.CreateVersion7(),
            tenantId,
            name,
            key[..DisplayPrefixLength],
            // Microsecond precision, as PostgreSQL stores it: the record returned equals the one read back.
            Truncate(clock.GetUtcNow()),
            expiresAt is { } e ? Truncate(e.ToUniversalTime()) : null,
            RevokedAt: null,
            admin);

        await using var command = dataSource.CreateCommand(
            "INSERT INTO api_keys (id, tenant_id, name, key_prefix, key_hash, created_at, expires_at, admin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = record.Id });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = record.TenantId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = record.Name });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = record.KeyPrefix });
        command.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = Hash(key) });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = record.CreatedAt });
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.TimestampTz, Value = record.ExpiresAt is { } x ? x : DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter<bool> { TypedValue = admin });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return new CreatedApiKey(key, record);
    }

    /// <summary>The key whose SHA-256 is <paramref name="hash"/>, revoked and expired ones included.</summary>
    public async Task<ApiKeyRecord?> FindAsync(byte[] hash, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM api_keys WHERE key_hash = $1");
        command.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = hash });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? Read(reader) : null;
    }

    /// <summary>The tenant's keys, revoked and expired ones included, newest first.</summary>
    public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string tenantId, CancellationToken cancellationToken) =>
        QueryAsync(tenantId, limit: null, cancellationToken);

    /// <summary>For operators: the keys of every tenant, or of <paramref name="tenantId"/> when given, newest first, at most <paramref name="limit"/>.</summary>
    public Task<IReadOnlyList<ApiKeyRecord>> ListAllAsync(string? tenantId, int limit, CancellationToken cancellationToken) =>
        QueryAsync(tenantId, limit, cancellationToken);

    /// <summary>
    /// Sets <c>last_used_at</c> of each key to its instant in <paramref name="usedAt"/>, in one statement;
    /// a row whose stored value is less than <paramref name="precision"/> older is left alone, so API
    /// instances that each report the same key do not each rewrite its row.
    /// </summary>
    public async Task RecordUseAsync(IReadOnlyDictionary<Guid, DateTimeOffset> usedAt, TimeSpan precision, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(usedAt);
        if (usedAt.Count == 0)
        {
            return;
        }

        await using var command = dataSource.CreateCommand("""
            UPDATE api_keys AS k SET last_used_at = u.at
            FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
            WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at <= u.at - $3::interval)
            """);
        command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. usedAt.Keys] });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset[]> { TypedValue = [.. usedAt.Values.Select(Truncate)] });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = precision });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<IReadOnlyList<ApiKeyRecord>> QueryAsync(string? tenantId, int? limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT {Columns} FROM api_keys WHERE ($1::text IS NULL OR tenant_id = $1)
            ORDER BY created_at DESC, id DESC LIMIT $2
            """);
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = (object?)tenantId ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Integer, Value = limit is { } l ? l : DBNull.Value });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var keys = new List<ApiKeyRecord>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            keys.Add(Read(reader));
        }

        return keys;
    }

    /// <summary>
    /// Revokes the tenant's key <paramref name="id"/>, unless it is the tenant's last usable admin key
    /// (the tenant could no longer manage its keys). Under a per-tenant lock, so two revocations at once
    /// cannot each leave the other key as "the last one".
    /// </summary>
    public async Task<(RevokeOutcome Outcome, ApiKeyRecord? Record)> RevokeAsync(string tenantId, Guid id, CancellationToken cancellationToken)
    {
        var now = Truncate(clock.GetUtcNow());
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", connection, transaction))
        {
            lockCommand.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "api_keys:" + tenantId });
            await lockCommand.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        ApiKeyRecord? record;
        await using (var select = new NpgsqlCommand($"SELECT {Columns} FROM api_keys WHERE id = $1 AND tenant_id = $2", connection, transaction))
        {
            select.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
            select.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
            await using var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            record = await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? Read(reader) : null;
        }

        if (record is null)
        {
            return (RevokeOutcome.NotFound, null);
        }

        if (record.RevokedAt is not null)
        {
            return (RevokeOutcome.AlreadyRevoked, record);
        }

        if (record.Admin && record.IsValidAt(now))
        {
            await using var others = new NpgsqlCommand("""
                SELECT count(*) FROM api_keys
                WHERE tenant_id = $1 AND id <> $2 AND admin AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)
                """, connection, transaction);
            others.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
            others.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
            others.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = now });
            if ((long)(await others.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! == 0)
            {
                return (RevokeOutcome.LastAdminKey, record);
            }
        }

        await using (var update = new NpgsqlCommand("UPDATE api_keys SET revoked_at = $2 WHERE id = $1", connection, transaction))
        {
            update.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
            update.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = now });
            await update.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return (RevokeOutcome.Revoked, record with { RevokedAt = now });
    }

    private static ApiKeyRecord Read(NpgsqlDataReader reader) => new(
        reader.GetGuid(0),
        reader.GetString(1),
        reader.GetString(2),
        reader.GetString(3),
        reader.GetFieldValue<DateTimeOffset>(4),
        reader.IsDBNull(5) ? null : reader.GetFieldValue<DateTimeOffset>(5),
        reader.IsDBNull(6) ? null : reader.GetFieldValue<DateTimeOffset>(6),
        reader.GetBoolean(7),
        reader.IsDBNull(8) ? null : reader.GetFieldValue<DateTimeOffset>(8));

    /// <summary>Marks the key revoked; false when there is no such key or it was revoked already.</summary>
    public async Task<bool> RevokeAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL");
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = Truncate(clock.GetUtcNow()) });
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    private static DateTimeOffset Truncate(DateTimeOffset time) =>
        new(time.UtcTicks - (time.UtcTicks % TimeSpan.TicksPerMicrosecond), TimeSpan.Zero);
}

public enum RevokeOutcome
{
    Revoked,
    AlreadyRevoked,
    NotFound,
    LastAdminKey,
}

/// <summary>Creates <c>api_keys</c> before the API takes requests.</summary>
internal sealed class ApiKeySchemaMigration(ApiKeyStore store) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => store.MigrateAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
