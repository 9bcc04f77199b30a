using System.Security.Cryptography;
using Npgsql;

namespace Async.Serving.Api.Webhooks;

/// <summary>
/// Webhook state in PostgreSQL: each tenant's signing secrets (<c>webhook_secrets</c>; the current
/// one has no <c>expires_at</c>, rotated-out ones sign until theirs) and the URLs a receiver turned
/// off with 410 Gone (<c>webhook_disabled_urls</c>). Secrets are kept in clear: HMAC needs them.
/// </summary>
public sealed class WebhookStore(NpgsqlDataSource dataSource, TimeProvider clock)
{
    public const string SecretPrefix = "whsec_";

    // Any number works, as long as nothing else in the database takes the same advisory lock.
    private const long MigrationLock = 0x77_65_62_68_6f_6f_6b; // "webhook"

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS webhook_secrets (
            id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id   text        NOT NULL,
            secret      text        NOT NULL,
            created_at  timestamptz NOT NULL,
            expires_at  timestamptz NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS webhook_secrets_current ON webhook_secrets (tenant_id) WHERE expires_at IS NULL;
        CREATE TABLE IF NOT EXISTS webhook_disabled_urls (
            tenant_id   text        NOT NULL,
            url         text        NOT NULL,
            disabled_at timestamptz NOT NULL,
            reason      text        NOT NULL,
            PRIMARY KEY (tenant_id, url)
        );
        CREATE TABLE IF NOT EXISTS webhook_deliveries (
            id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id      text        NOT NULL,
            tenant_id   text        NOT NULL,
            message_id  text        NOT NULL,
            event_type  text        NOT NULL,
            url         text        NOT NULL,
            attempt     int         NOT NULL,
            outcome     text        NOT NULL,
            detail      text        NOT NULL,
            at          timestamptz NOT NULL
        );
        CREATE INDEX IF NOT EXISTS webhook_deliveries_job ON webhook_deliveries (job_id, at);
        -- The delivered body, for redelivery (rows from before this column have none).
        ALTER TABLE webhook_deliveries ADD COLUMN IF NOT EXISTS body text NULL;
        CREATE INDEX IF NOT EXISTS webhook_deliveries_tenant ON webhook_deliveries (tenant_id, id);
        """;

    private const string DeliveryColumns = "id, job_id, message_id, event_type, url, attempt, outcome, detail, at, body IS NOT NULL, tenant_id";

    /// <summary><see cref="SecretPrefix"/> plus 32 random bytes in base64, the form Standard Webhooks libraries read.</summary>
    public static string NewSecret() => SecretPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>Creates the tables when missing. Safe to run from several processes at once.</summary>
    public Task MigrateAsync(CancellationToken cancellationToken) =>
        Storage.PostgresSchema.EnsureAsync(dataSource, MigrationLock, Schema, cancellationToken);

    /// <summary>Records one delivery attempt and its outcome, for the job's page in the dashboard.</summary>
    public async Task RecordAttemptAsync(WebhookMessage message, int attempt, string outcome, string detail)
    {
        await using var command = dataSource.CreateCommand(
            "INSERT INTO webhook_deliveries (job_id, tenant_id, message_id, event_type, url, attempt, outcome, detail, at, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = message.JobId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = message.TenantId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = message.MessageId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = message.Type });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = message.Url });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = attempt });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = outcome });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = detail.Length > 2000 ? detail[..2000] : detail });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = clock.GetUtcNow() });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = message.Body });
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// The tenant's delivery attempts, newest first: those with an id below <paramref name="before"/>
    /// (the cursor), of job <paramref name="jobId"/> and with outcome <paramref name="outcome"/> when given.
    /// A null <paramref name="tenantId"/> (operators only) means every tenant's.
    /// </summary>
    public async Task<IReadOnlyList<DeliveryRecord>> DeliveriesAsync(
        string? tenantId, string? jobId, string? outcome, long? before, int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT {DeliveryColumns} FROM webhook_deliveries
            WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR job_id = $2) AND ($3::text IS NULL OR outcome = $3) AND ($4::bigint IS NULL OR id < $4)
            ORDER BY id DESC LIMIT $5
            """);
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text, Value = (object?)tenantId ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text, Value = (object?)jobId ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text, Value = (object?)outcome ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint, Value = before is { } b ? b : DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var deliveries = new List<DeliveryRecord>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            deliveries.Add(new DeliveryRecord(
                reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                reader.GetInt32(5), reader.GetString(6), reader.GetString(7), reader.GetFieldValue<DateTimeOffset>(8), reader.GetBoolean(9),
                reader.GetString(10)));
        }

        return deliveries;
    }

    /// <summary>
    /// The message delivery attempt <paramref name="id"/> of the tenant carried; null when unknown, another tenant's, or stored
    /// without its body. A null <paramref name="tenantId"/> (operators only) finds any tenant's.
    /// </summary>
    public async Task<WebhookMessage?> MessageAsync(string? tenantId, long id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT tenant_id, job_id, url, event_type, message_id, body FROM webhook_deliveries
            WHERE ($1::text IS NULL OR tenant_id = $1) AND id = $2 AND body IS NOT NULL
            """);
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text, Value = (object?)tenantId ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = id });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? new WebhookMessage(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetString(5))
            : null;
    }

    /// <summary>Every recorded delivery attempt of a job, oldest first.</summary>
    public async Task<IReadOnlyList<DeliveryAttempt>> AttemptsAsync(string jobId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT event_type, url, attempt, outcome, detail, at FROM webhook_deliveries WHERE job_id = $1 ORDER BY at, id");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = jobId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var attempts = new List<DeliveryAttempt>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            attempts.Add(new DeliveryAttempt(
                reader.GetString(0), reader.GetString(1), reader.GetInt32(2), reader.GetString(3), reader.GetString(4), reader.GetFieldValue<DateTimeOffset>(5)));
        }

        return attempts;
    }

    /// <summary>The tenant's current secret, created on first use.</summary>
    public async Task<string> CurrentSecretAsync(string tenantId, CancellationToken cancellationToken)
    {
        await using var select = dataSource.CreateCommand("SELECT secret FROM webhook_secrets WHERE tenant_id = $1 AND expires_at IS NULL");
        select.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
        if (await select.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is string existing)
        {
            return existing;
        }

        // Two first uses at once: the unique index lets one insert win, and both read the winner.
        await using var insert = dataSource.CreateCommand("""
            INSERT INTO webhook_secrets (tenant_id, secret, created_at) VALUES ($1, $2, $3)
            ON CONFLICT (tenant_id) WHERE expires_at IS NULL DO NOTHING
            """);
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = NewSecret() });
        insert.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = clock.GetUtcNow() });
        await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return (string)(await select.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>
    /// A new current secret; the one it replaces keeps signing until <paramref name="overlap"/> from
    /// now, so receivers can switch without missing a delivery. Returns the new secret and that instant.
    /// </summary>
    public async Task<(string Secret, DateTimeOffset PreviousExpiresAt)> RotateAsync(string tenantId, TimeSpan overlap, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var secret = NewSecret();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        // Two rotations at once would otherwise both expire the old row and collide on the new one.
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", connection, transaction))
        {
            lockCommand.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "webhook_secrets:" + tenantId });
            await lockCommand.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using (var expire = new NpgsqlCommand(
            "UPDATE webhook_secrets SET expires_at = $2 WHERE tenant_id = $1 AND expires_at IS NULL", connection, transaction))
        {
            expire.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
            expire.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = now + overlap });
            await expire.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using (var insert = new NpgsqlCommand(
            "INSERT INTO webhook_secrets (tenant_id, secret, created_at) VALUES ($1, $2, $3)", connection, transaction))
        {
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = secret });
            insert.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = now });
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return (secret, now + overlap);
    }

    /// <summary>Every secret that signs now, newest first; creates the first one when the tenant has none.</summary>
    public async Task<IReadOnlyList<string>> SigningSecretsAsync(string tenantId, CancellationToken cancellationToken)
    {
        var current = await CurrentSecretAsync(tenantId, cancellationToken).ConfigureAwait(false);
        await using var command = dataSource.CreateCommand(
            "SELECT secret FROM webhook_secrets WHERE tenant_id = $1 AND expires_at > $2 ORDER BY created_at DESC");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = clock.GetUtcNow() });
        var secrets = new List<string> { current };
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            secrets.Add(reader.GetString(0));
        }

        return secrets;
    }

    /// <summary>Stops deliveries to <paramref name="url"/> for the tenant (the receiver answered 410 Gone).</summary>
    public async Task DisableAsync(string tenantId, string url, string reason, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            INSERT INTO webhook_disabled_urls (tenant_id, url, disabled_at, reason) VALUES ($1, $2, $3, $4)
            ON CONFLICT (tenant_id, url) DO NOTHING
            """);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = url });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = clock.GetUtcNow() });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = reason });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Delivers to <paramref name="url"/> again (a 410 had disabled it); false when it was not disabled.</summary>
    public async Task<bool> EnableAsync(string tenantId, string url, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM webhook_disabled_urls WHERE tenant_id = $1 AND url = $2");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = url });
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    /// <summary>For operators: the URLs disabled by a 410, of every tenant or of <paramref name="tenantId"/>, most recently disabled first.</summary>
    public async Task<IReadOnlyList<DisabledUrl>> DisabledUrlsAsync(string? tenantId, int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT tenant_id, url, disabled_at, reason FROM webhook_disabled_urls
            WHERE ($1::text IS NULL OR tenant_id = $1) ORDER BY disabled_at DESC, tenant_id, url LIMIT $2
            """);
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text, Value = (object?)tenantId ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var urls = new List<DisabledUrl>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            urls.Add(new DisabledUrl(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<DateTimeOffset>(2), reader.GetString(3)));
        }

        return urls;
    }

    public async Task<bool> IsDisabledAsync(string tenantId, string url, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT 1 FROM webhook_disabled_urls WHERE tenant_id = $1 AND url = $2");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = url });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not null;
    }
}

/// <summary>Creates the webhook tables before the API takes requests.</summary>
internal sealed class WebhookSchemaMigration(WebhookStore store) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => store.MigrateAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>One recorded attempt of the tenant's, as <c>GET /v1/webhooks/deliveries</c> lists it; <see cref="Redeliverable"/> when its body was stored.</summary>
public sealed record DeliveryRecord(
    long Id,
    string JobId,
    string MessageId,
    string EventType,
    string Url,
    int Attempt,
    string Outcome,
    string Detail,
    DateTimeOffset At,
    bool Redeliverable,
    string TenantId);

/// <summary>A tenant's URL that answered 410 Gone: nothing is delivered to it until it is enabled again.</summary>
public sealed record DisabledUrl(string TenantId, string Url, DateTimeOffset DisabledAt, string Reason);

/// <summary>One recorded attempt: outcome is delivered, retrying, failed, skipped or disabled.</summary>
public sealed record DeliveryAttempt(string EventType, string Url, int Attempt, string Outcome, string Detail, DateTimeOffset At);
