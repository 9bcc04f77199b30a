using Async.Serving.Jobs;
using Npgsql;
using NpgsqlTypes;

namespace Async.Serving.Api.Ledger;

/// <summary>A row of <c>job_ledger</c>: one per job, the latest state the writer saw.</summary>
public sealed record LedgerRow(
    string JobId,
    string TenantId,
    string Pipeline,
    string Model,
    string Status,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? CompletedAt,
    int Attempts,
    long InputBytes,
    long? ComputeMs,
    string? ErrorCode,
    DateTimeOffset UpdatedAt,
    string? TraceId = null,
    string? Priority = null,
    string? Cache = null,
    long? SavedMs = null);

/// <summary>
/// Jobs and compute of one pipeline and model version (<c>name@version</c>) in a period, with what
/// compares versions: the share of finished jobs that failed, and percentiles of the succeeded
/// jobs' execution time and of their latency from submit to completion (null when none succeeded).
/// </summary>
/// <remarks>
/// <see cref="CacheHits"/>: jobs answered by the result cache (no worker time); <see cref="CacheHitRate"/>:
/// hits over the jobs that looked the cache up (hits and misses); <see cref="SavedComputeMs"/>: the
/// execution time the hits did not spend (per hit, that of the job that computed the output).
/// </remarks>
public sealed record UsageLine(
    string Pipeline, string Model, long Jobs, long Succeeded, long Failed, long ComputeMs, long InputBytes,
    double? FailureRate = null, Percentiles? ExecutionMs = null, Percentiles? LatencyMs = null,
    long CacheHits = 0, double CacheHitRate = 0, long SavedComputeMs = 0);

/// <summary>Percentiles in milliseconds (PostgreSQL <c>percentile_cont</c>: interpolated).</summary>
public sealed record Percentiles(double P50, double P95, double P99)
{
    internal static Percentiles? From(double[]? values) => values is [var p50, var p95, var p99] ? new(Math.Round(p50, 1), Math.Round(p95, 1), Math.Round(p99, 1)) : null;
}

/// <summary>
/// Filters of the dashboard's job list (null means any) and its page: the <paramref name="Limit"/> jobs
/// just older than <paramref name="Before"/>, or just newer than <paramref name="After"/>, or the newest.
/// </summary>
public sealed record LedgerQuery(
    string? Status, string? Pipeline, string? Model, string? TenantId, int Limit, LedgerCursor? Before = null, LedgerCursor? After = null);

/// <summary>A position in the job list, which is ordered by creation time and then job id, newest first.</summary>
public sealed record LedgerCursor(DateTimeOffset CreatedAt, string JobId)
{
    public static LedgerCursor Of(LedgerRow row) => new(row.CreatedAt, row.JobId);

    /// <summary>The cursor as text for a link: UTC ticks, a dot, the job id.</summary>
    public string Format() => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{CreatedAt.UtcTicks}.{JobId}");

    /// <summary>The cursor <see cref="Format"/> wrote, or null for anything else.</summary>
    public static LedgerCursor? Parse(string? text)
    {
        var dot = text?.IndexOf('.', StringComparison.Ordinal) ?? -1;
        return dot > 0 && dot < text!.Length - 1
            && long.TryParse(text.AsSpan(0, dot), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var ticks)
            && ticks <= DateTimeOffset.MaxValue.UtcTicks
                ? new LedgerCursor(new DateTimeOffset(ticks, TimeSpan.Zero), text[(dot + 1)..])
                : null;
    }
}

/// <summary>
/// The job ledger in PostgreSQL: <c>job_ledger</c> (one row per job, upserted as its state changes)
/// and <c>job_ledger_events</c> (each status change with its time). Written in batches by
/// <see cref="LedgerWriter"/>; read by <c>GET /v1/usage</c> and the dashboard.
/// </summary>
public sealed class LedgerStore(NpgsqlDataSource dataSource) : ILedgerSink
{
    private const long MigrationLock = 0x6c_65_64_67_65_72; // "ledger"

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS job_ledger (
            job_id        text        PRIMARY KEY,
            tenant_id     text        NOT NULL,
            pipeline      text        NOT NULL,
            model         text        NOT NULL,
            status        text        NOT NULL,
            created_at    timestamptz NOT NULL,
            started_at    timestamptz NULL,
            completed_at  timestamptz NULL,
            attempts      integer     NOT NULL,
            input_bytes   bigint      NOT NULL,
            compute_ms    bigint      NULL,
            error_code    text        NULL,
            updated_at    timestamptz NOT NULL
        );
        -- Added with tracing: the job's OpenTelemetry trace id (null for rows written before).
        ALTER TABLE job_ledger ADD COLUMN IF NOT EXISTS trace_id text NULL;
        -- Added with priorities: low, normal or high (null for rows written before).
        ALTER TABLE job_ledger ADD COLUMN IF NOT EXISTS priority text NULL;
        -- Added with the result cache: hit, miss or null (off), and a hit's saved execution time.
        ALTER TABLE job_ledger ADD COLUMN IF NOT EXISTS cache text NULL;
        ALTER TABLE job_ledger ADD COLUMN IF NOT EXISTS saved_ms bigint NULL;
        CREATE INDEX IF NOT EXISTS job_ledger_tenant_created ON job_ledger (tenant_id, created_at);
        CREATE INDEX IF NOT EXISTS job_ledger_created ON job_ledger (created_at);
        -- Only the rows still live, for the reconcile job: small whatever the table's size.
        CREATE INDEX IF NOT EXISTS job_ledger_live ON job_ledger (updated_at) WHERE status IN ('queued', 'running');
        CREATE TABLE IF NOT EXISTS job_ledger_events (
            job_id  text        NOT NULL,
            status  text        NOT NULL,
            at      timestamptz NOT NULL,
            PRIMARY KEY (job_id, at, status)
        );
        CREATE INDEX IF NOT EXISTS job_ledger_events_at ON job_ledger_events (at);
        """;

    // One statement per table for the whole batch (arrays unnested), so a batch is two round trips.
    // A row never goes back from a terminal status to a live one, whatever order writers commit in.
    private const string Upsert = """
        INSERT INTO job_ledger AS l (job_id, tenant_id, pipeline, model, status, created_at, started_at, completed_at,
                                     attempts, input_bytes, compute_ms, error_code, updated_at, trace_id, priority, cache, saved_ms)
        SELECT u.job_id, u.tenant_id, u.pipeline, u.model, u.status, u.created_at, u.started_at, u.completed_at,
               u.attempts, u.input_bytes, u.compute_ms, u.error_code, now(), u.trace_id, u.priority, u.cache, u.saved_ms
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[],
                    $8::timestamptz[], $9::integer[], $10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[], $16::bigint[])
             AS u(job_id, tenant_id, pipeline, model, status, created_at, started_at, completed_at,
                  attempts, input_bytes, compute_ms, error_code, trace_id, priority, cache, saved_ms)
        ON CONFLICT (job_id) DO UPDATE SET
            status = EXCLUDED.status, started_at = EXCLUDED.started_at, completed_at = EXCLUDED.completed_at,
            attempts = EXCLUDED.attempts, input_bytes = EXCLUDED.input_bytes, compute_ms = EXCLUDED.compute_ms,
            error_code = EXCLUDED.error_code, updated_at = now(), trace_id = coalesce(EXCLUDED.trace_id, l.trace_id),
            priority = coalesce(EXCLUDED.priority, l.priority),
            cache = coalesce(EXCLUDED.cache, l.cache), saved_ms = coalesce(EXCLUDED.saved_ms, l.saved_ms)
        WHERE l.status NOT IN ('succeeded', 'failed', 'cancelled', 'expired')
           OR EXCLUDED.status IN ('succeeded', 'failed', 'cancelled', 'expired')
        """;

    private const string InsertEvents = """
        INSERT INTO job_ledger_events (job_id, status, at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
        ON CONFLICT DO NOTHING
        """;

    private const string Columns =
        "job_id, tenant_id, pipeline, model, status, created_at, started_at, completed_at, attempts, input_bytes, compute_ms, error_code, updated_at, trace_id, priority, cache, saved_ms";

    /// <summary>Creates the tables when missing. Safe to run from several processes at once.</summary>
    public Task MigrateAsync(CancellationToken cancellationToken) =>
        Storage.PostgresSchema.EnsureAsync(dataSource, MigrationLock, Schema, cancellationToken);

    public async Task WriteAsync(LedgerBatch batch, CancellationToken cancellationToken)
    {
        if (batch.Jobs.Count == 0 && batch.Events.Count == 0 && batch.Deleted.Count == 0)
        {
            return;
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (batch.Jobs.Count > 0)
        {
            var jobs = batch.Jobs;
            await using var upsert = new NpgsqlCommand(Upsert, connection, transaction);
            upsert.Parameters.Add(TextArray(jobs.Select(j => j.Id)));
            upsert.Parameters.Add(TextArray(jobs.Select(j => j.TenantId)));
            upsert.Parameters.Add(TextArray(jobs.Select(j => j.Pipeline)));
            upsert.Parameters.Add(TextArray(jobs.Select(j => j.Model)));
            upsert.Parameters.Add(TextArray(jobs.Select(j => j.Status)));
            upsert.Parameters.Add(Times(jobs.Select(j => (DateTimeOffset?)j.CreatedAt)));
            upsert.Parameters.Add(Times(jobs.Select(j => j.StartedAt)));
            upsert.Parameters.Add(Times(jobs.Select(j => j.CompletedAt)));
            upsert.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [.. jobs.Select(j => j.Attempts)] });
            upsert.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. jobs.Select(j => j.InputBytes)] });
            upsert.Parameters.Add(new NpgsqlParameter<long?[]> { TypedValue = [.. jobs.Select(j => j.ExecutionMs)] });
            upsert.Parameters.Add(TextArray(jobs.Select(j => j.ErrorCode)));
            upsert.Parameters.Add(TextArray(jobs.Select(j => j.TraceId)));
            upsert.Parameters.Add(TextArray(jobs.Select(j => j.Priority)));
            upsert.Parameters.Add(TextArray(jobs.Select(j => j.Cache)));
            upsert.Parameters.Add(new NpgsqlParameter<long?[]> { TypedValue = [.. jobs.Select(j => j.SavedMs)] });
            await upsert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        var events = batch.Events.Where(e => e.Status != "deleted").ToList();
        if (events.Count > 0)
        {
            await using var insert = new NpgsqlCommand(InsertEvents, connection, transaction);
            insert.Parameters.Add(TextArray(events.Select(e => e.JobId)));
            insert.Parameters.Add(TextArray(events.Select(e => e.Status)));
            insert.Parameters.Add(Times(events.Select(e => (DateTimeOffset?)e.At)));
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        if (batch.Deleted.Count > 0)
        {
            // Jobs whose publish failed never existed for the client: no row, no usage.
            // One statement per command: Npgsql refuses positional parameters in a multi-statement command.
            foreach (var sql in (string[])["DELETE FROM job_ledger WHERE job_id = ANY($1)", "DELETE FROM job_ledger_events WHERE job_id = ANY($1)"])
            {
                await using var delete = new NpgsqlCommand(sql, connection, transaction);
                delete.Parameters.Add(TextArray(batch.Deleted));
                await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Server errors that are about the data (a constraint, a bad value) are not transient; a lost connection, a timeout or a shutting-down server are.</summary>
    public bool IsTransient(Exception exception) => exception is not PostgresException { IsTransient: false };

    /// <summary>
    /// The tenant's jobs created in [from, to), per pipeline and model version; <paramref name="model"/>
    /// keeps one model's versions (a bare name) or one version (<c>name@version</c>).
    /// </summary>
    public async Task<List<UsageLine>> UsageAsync(string tenantId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken, string? model = null)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT pipeline, model, count(*),
                   count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'),
                   coalesce(sum(compute_ms), 0)::bigint, coalesce(sum(input_bytes), 0)::bigint,
                   percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY compute_ms)
                       FILTER (WHERE status = 'succeeded' AND compute_ms IS NOT NULL),
                   percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at) * 1000)
                       FILTER (WHERE status = 'succeeded' AND completed_at IS NOT NULL),
                   count(*) FILTER (WHERE cache = 'hit'), count(*) FILTER (WHERE cache IN ('hit', 'miss')),
                   coalesce(sum(saved_ms) FILTER (WHERE cache = 'hit'), 0)::bigint
            FROM job_ledger
            WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
              AND ($4::text IS NULL OR model = $4 OR model LIKE $5)
            GROUP BY pipeline, model
            ORDER BY pipeline, model
            """);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = from.ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = to.ToUniversalTime() });
        command.Parameters.Add(Text(model));
        // A bare name matches each of its versions; names hold no LIKE wildcards but '_', escaped.
        command.Parameters.Add(Text(model is null || model.Contains('@', StringComparison.Ordinal) ? null : model.Replace("_", "\\_", StringComparison.Ordinal) + "@%"));
        var lines = new List<UsageLine>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var (succeeded, failed) = (reader.GetInt64(3), reader.GetInt64(4));
            var (hits, lookups) = (reader.GetInt64(9), reader.GetInt64(10));
            lines.Add(new UsageLine(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), succeeded, failed, reader.GetInt64(5), reader.GetInt64(6),
                succeeded + failed > 0 ? Math.Round((double)failed / (succeeded + failed), 4) : null,
                Percentiles.From(reader.IsDBNull(7) ? null : reader.GetFieldValue<double[]>(7)),
                Percentiles.From(reader.IsDBNull(8) ? null : reader.GetFieldValue<double[]>(8)),
                hits, lookups == 0 ? 0 : Math.Round((double)hits / lookups, 4), reader.GetInt64(11)));
        }

        return lines;
    }

    /// <summary>
    /// One page of the jobs matching <paramref name="query"/>, newest first: keyset paging on
    /// (created_at, job_id), so a page stays put while new jobs arrive.
    /// </summary>
    public async Task<List<LedgerRow>> ListAsync(LedgerQuery query, CancellationToken cancellationToken)
    {
        var newer = query.Before is null && query.After is not null;
        var order = newer ? "ASC" : "DESC";
        await using var command = dataSource.CreateCommand($"""
            SELECT {Columns} FROM job_ledger
            WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR pipeline = $2)
              AND ($3::text IS NULL OR model = $3) AND ($4::text IS NULL OR tenant_id = $4)
              AND ($6::timestamptz IS NULL OR (created_at, job_id) < ($6::timestamptz, $7::text))
              AND ($8::timestamptz IS NULL OR (created_at, job_id) > ($8::timestamptz, $9::text))
            ORDER BY created_at {order}, job_id {order}
            LIMIT $5
            """);
        command.Parameters.Add(Text(query.Status));
        command.Parameters.Add(Text(query.Pipeline));
        command.Parameters.Add(Text(query.Model));
        command.Parameters.Add(Text(query.TenantId));
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = query.Limit });
        foreach (var cursor in (LedgerCursor?[])[query.Before, query.After])
        {
            command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.TimestampTz, Value = cursor is null ? DBNull.Value : cursor.CreatedAt.UtcDateTime });
            command.Parameters.Add(Text(cursor?.JobId));
        }

        var rows = new List<LedgerRow>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            rows.Add(ReadRow(reader));
        }

        if (newer)
        {
            rows.Reverse();
        }

        return rows;
    }

    /// <summary>One job's row and its status changes, oldest first; null when the ledger has no such job.</summary>
    public async Task<(LedgerRow Row, List<LedgerEvent> Events)?> GetAsync(string jobId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        LedgerRow row;
        await using (var command = new NpgsqlCommand($"SELECT {Columns} FROM job_ledger WHERE job_id = $1", connection))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = jobId });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return null;
            }

            row = ReadRow(reader);
        }

        var events = new List<LedgerEvent>();
        await using (var command = new NpgsqlCommand("SELECT status, at FROM job_ledger_events WHERE job_id = $1 ORDER BY at, status", connection))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = jobId });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                events.Add(new LedgerEvent(jobId, reader.GetString(0), reader.GetFieldValue<DateTimeOffset>(1)));
            }
        }

        return (row, events);
    }

    /// <summary>Jobs whose row is not terminal and was last written before <paramref name="before"/>, oldest first.</summary>
    public async Task<List<string>> StaleAsync(DateTimeOffset before, int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT job_id FROM job_ledger WHERE status IN ('queued', 'running') AND updated_at < $1 ORDER BY updated_at LIMIT $2");
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = before.ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        var ids = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }

    /// <summary>
    /// Ends rows still <c>queued</c> or <c>running</c> whose job is gone from Redis (its record expired,
    /// or a Redis crash lost it): <c>failed</c> with error code <c>lost</c>, so they neither stay open
    /// for ever nor count as work in progress. Only rows that are still open are touched.
    /// </summary>
    public async Task<int> MarkLostAsync(IReadOnlyCollection<string> jobIds, DateTimeOffset at, CancellationToken cancellationToken)
    {
        if (jobIds.Count == 0)
        {
            return 0;
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var update = new NpgsqlCommand(
            "UPDATE job_ledger SET status = 'failed', error_code = 'lost', completed_at = $2, updated_at = now() " +
            "WHERE job_id = ANY($1) AND status IN ('queued', 'running') RETURNING job_id", connection, transaction);
        update.Parameters.Add(TextArray(jobIds));
        update.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = at.ToUniversalTime() });
        var ended = new List<string>();
        await using (var reader = await update.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                ended.Add(reader.GetString(0));
            }
        }

        if (ended.Count > 0)
        {
            await using var insert = new NpgsqlCommand(InsertEvents, connection, transaction);
            insert.Parameters.Add(TextArray(ended));
            insert.Parameters.Add(TextArray(ended.Select(_ => "failed")));
            insert.Parameters.Add(Times(ended.Select(_ => (DateTimeOffset?)at)));
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return ended.Count;
    }

    /// <summary>Deletes rows of jobs created before <paramref name="rowsBefore"/> and events before <paramref name="eventsBefore"/>; returns the rows deleted.</summary>
    public async Task<int> PurgeAsync(DateTimeOffset rowsBefore, DateTimeOffset eventsBefore, CancellationToken cancellationToken)
    {
        await using var rows = dataSource.CreateCommand("DELETE FROM job_ledger WHERE created_at < $1");
        rows.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = rowsBefore.ToUniversalTime() });
        var deleted = await rows.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        await using var events = dataSource.CreateCommand("DELETE FROM job_ledger_events WHERE at < $1");
        events.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = eventsBefore.ToUniversalTime() });
        await events.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return deleted;
    }

    private static LedgerRow ReadRow(NpgsqlDataReader reader) => new(
        reader.GetString(0),
        reader.GetString(1),
        reader.GetString(2),
        reader.GetString(3),
        reader.GetString(4),
        reader.GetFieldValue<DateTimeOffset>(5),
        reader.IsDBNull(6) ? null : reader.GetFieldValue<DateTimeOffset>(6),
        reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTimeOffset>(7),
        reader.GetInt32(8),
        reader.GetInt64(9),
        reader.IsDBNull(10) ? null : reader.GetInt64(10),
        reader.IsDBNull(11) ? null : reader.GetString(11),
        reader.GetFieldValue<DateTimeOffset>(12),
        reader.IsDBNull(13) ? null : reader.GetString(13),
        reader.IsDBNull(14) ? null : reader.GetString(14),
        reader.IsDBNull(15) ? null : reader.GetString(15),
        reader.IsDBNull(16) ? null : reader.GetInt64(16));

    private static NpgsqlParameter Text(string? value) =>
        new() { NpgsqlDbType = NpgsqlDbType.Text, Value = value is { Length: > 0 } ? value : DBNull.Value };

    private static NpgsqlParameter<string?[]> TextArray(IEnumerable<string?> values) => new() { TypedValue = [.. values] };

    private static NpgsqlParameter<DateTime?[]> Times(IEnumerable<DateTimeOffset?> values) =>
        new() { TypedValue = [.. values.Select(v => v?.UtcDateTime)] };
}

/// <summary>Creates the ledger tables before the API takes requests.</summary>
internal sealed class LedgerSchemaMigration(LedgerStore store) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => store.MigrateAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
