using System.Text.Json;
using Async.Serving.Jobs;
using Npgsql;
using NpgsqlTypes;

namespace Async.Serving.Api.Batches;

/// <summary>A batch's statuses: <c>validating</c> until its lines start becoming jobs, then <c>in_progress</c>, and at the end <c>completed</c> (or, after a cancel, <c>cancelling</c> then <c>cancelled</c>).</summary>
public static class BatchStatuses
{
    public const string Validating = "validating";
    public const string InProgress = "in_progress";
    public const string Completed = "completed";
    public const string Cancelling = "cancelling";
    public const string Cancelled = "cancelled";

    public static readonly string[] All = [Validating, InProgress, Completed, Cancelling, Cancelled];

    public static bool IsEnded(string status) => status is Completed or Cancelled;
}

/// <summary>
/// A line's status: <c>pending</c> until its job is made, then its job's status as the ledger saw it,
/// or <c>errored</c> (the line never became a job); a line still pending when the batch is cancelled
/// becomes <c>cancelled</c> without a job.
/// </summary>
public static class BatchLineStatuses
{
    public const string Pending = "pending";
    public const string Errored = "errored";

    /// <summary>Every status a line can have, in the order the Batch resource lists their counts.</summary>
    public static readonly string[] All =
        [Pending, JobStatuses.Queued, JobStatuses.Running, JobStatuses.Succeeded, JobStatuses.Failed, JobStatuses.Cancelled, JobStatuses.Expired, Errored];

    public static bool IsLive(string status) => status is Pending or JobStatuses.Queued or JobStatuses.Running;
}

/// <summary>One batch as stored, with its lines counted by status.</summary>
public sealed record BatchRecord(
    string Id,
    string TenantId,
    string Status,
    int Total,
    string? WebhookUrl,
    string? MetadataJson,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? CompletedAt,
    DateTimeOffset? CancelledAt,
    IReadOnlyDictionary<string, int> Counts);

/// <summary>One line of a batch for the results file.</summary>
public sealed record BatchLine(int Line, string CustomId, string? JobId, string Status, string? ErrorCode, string? ErrorMessage);

/// <summary>
/// Batches in PostgreSQL: <c>batches</c> (one row per batch) and <c>batch_lines</c> (one row per input
/// line: its <c>custom_id</c>, the line itself until its job is made, then the job's id and status).
/// A line's status follows its job through the ledger writer (<see cref="BatchLedgerSink"/>), so the
/// counts are one index-only <c>GROUP BY</c> of the batch's lines, and a finished batch keeps them
/// in its row. A line never leaves a terminal status.
/// </summary>
public sealed class BatchStore(NpgsqlDataSource dataSource)
{
    private const long MigrationLock = 0x62_61_74_63_68; // "batch"

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS batches (
            id            text        PRIMARY KEY,
            tenant_id     text        NOT NULL,
            status        text        NOT NULL,
            total         integer     NOT NULL,
            webhook_url   text        NULL,
            metadata      text        NULL,
            created_at    timestamptz NOT NULL,
            started_at    timestamptz NULL,
            completed_at  timestamptz NULL,
            cancelled_at  timestamptz NULL,
            -- The counts per line status, written once the batch ended (its lines no longer change).
            final_counts  jsonb       NULL,
            webhook_enqueued_at timestamptz NULL
        );
        CREATE INDEX IF NOT EXISTS batches_tenant_id ON batches (tenant_id, id);
        CREATE TABLE IF NOT EXISTS batch_lines (
            batch_id      text        NOT NULL,
            line          integer     NOT NULL,
            custom_id     text        NOT NULL,
            body          bytea       NULL,
            job_id        text        NULL,
            status        text        NOT NULL DEFAULT 'pending',
            error_code    text        NULL,
            error_message text        NULL,
            PRIMARY KEY (batch_id, line)
        );
        CREATE INDEX IF NOT EXISTS batch_lines_job ON batch_lines (job_id) WHERE job_id IS NOT NULL;
        CREATE INDEX IF NOT EXISTS batch_lines_status ON batch_lines (batch_id, status);
        -- The lines not yet ended, which the completion check and a cancel look for: small once a batch ends.
        CREATE INDEX IF NOT EXISTS batch_lines_live ON batch_lines (batch_id, line) WHERE status IN ('pending', 'queued', 'running');
        """;

    private const string BatchColumns =
        "id, tenant_id, status, total, webhook_url, metadata, created_at, started_at, completed_at, cancelled_at, final_counts";

    private static readonly string[] TerminalJobStatuses =
        [JobStatuses.Succeeded, JobStatuses.Failed, JobStatuses.Cancelled, JobStatuses.Expired];

    /// <summary>A new batch id: <c>batch_</c> and a UUIDv7 in hex, so ids sort by creation.</summary>
    public static string NewId() => "batch_" + Guid.CreateVersion7().ToString("N");

    /// <summary>Whether <paramref name="id"/> has the form of a batch id (anything else is answered 404 without a query).</summary>
    public static bool IsWellFormed(string? id) =>
        id is { Length: 38 } && id.StartsWith("batch_", StringComparison.Ordinal) && !id.AsSpan(6).ContainsAnyExcept("0123456789abcdef".AsSpan());

    public Task MigrateAsync(CancellationToken cancellationToken) =>
        Storage.PostgresSchema.EnsureAsync(dataSource, MigrationLock, Schema, cancellationToken);

    /// <summary>Starts writing a new batch: its lines are copied in as they are read, and nothing is visible before <see cref="BatchUploadWriter.CommitAsync"/>.</summary>
    public async Task<BatchUploadWriter> BeginUploadAsync(string batchId, CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var importer = await connection.BeginBinaryImportAsync(
                "COPY batch_lines (batch_id, line, custom_id, body) FROM STDIN (FORMAT BINARY)", cancellationToken).ConfigureAwait(false);
            return new BatchUploadWriter(batchId, connection, transaction, importer);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async Task<BatchRecord?> GetAsync(string id, string? tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {BatchColumns} FROM batches WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)");
        command.Parameters.Add(Text(id));
        command.Parameters.Add(Text(tenantId));
        var batches = await ReadBatchesAsync(command, cancellationToken).ConfigureAwait(false);
        return batches.Count == 0 ? null : (await WithCountsAsync(batches, cancellationToken).ConfigureAwait(false))[0];
    }

    /// <summary>The tenant's batches (every tenant's when null), newest first, after <paramref name="before"/> (a batch id).</summary>
    public async Task<IReadOnlyList<BatchRecord>> ListAsync(string? tenantId, string? before, int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT {BatchColumns} FROM batches
            WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR id < $2)
            ORDER BY id DESC LIMIT $3
            """);
        command.Parameters.Add(Text(tenantId));
        command.Parameters.Add(Text(before));
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        return await WithCountsAsync(await ReadBatchesAsync(command, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>validating → in_progress; false when the batch was started already, or cancelled first.</summary>
    public async Task<bool> StartAsync(string id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "UPDATE batches SET status = 'in_progress', started_at = now() WHERE id = $1 AND status = 'validating'");
        command.Parameters.Add(Text(id));
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <summary>The next <paramref name="count"/> line numbers after <paramref name="afterLine"/>, with whether each is still pending.</summary>
    public async Task<IReadOnlyList<(int Line, bool Pending)>> ChunkAsync(string id, int afterLine, int count, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT line, status = 'pending' FROM batch_lines WHERE batch_id = $1 AND line > $2 ORDER BY line LIMIT $3");
        command.Parameters.Add(Text(id));
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = afterLine });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = count });
        var lines = new List<(int, bool)>(count);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            lines.Add((reader.GetInt32(0), reader.GetBoolean(1)));
        }

        return lines;
    }

    /// <summary>A pending line's text (null once it is no longer pending).</summary>
    public async Task<byte[]?> PendingBodyAsync(string id, int line, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT body FROM batch_lines WHERE batch_id = $1 AND line = $2 AND status = 'pending'");
        command.Parameters.Add(Text(id));
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = line });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as byte[];
    }

    /// <summary>
    /// Records the job made for a line (<c>queued</c>, unless the line was cancelled meanwhile) and
    /// returns the line's status and the batch's, read after: a job made while the batch was being
    /// cancelled is seen here by its maker, who cancels it.
    /// </summary>
    public async Task<(string LineStatus, string BatchStatus)> RecordJobAsync(string id, int line, string jobId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            UPDATE batch_lines SET job_id = $3, body = NULL, status = CASE WHEN status = 'pending' THEN 'queued' ELSE status END
            WHERE batch_id = $1 AND line = $2
            RETURNING status, (SELECT status FROM batches WHERE id = $1)
            """);
        command.Parameters.Add(Text(id));
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = line });
        command.Parameters.Add(Text(jobId));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? (reader.GetString(0), reader.GetString(1))
            : (JobStatuses.Cancelled, BatchStatuses.Cancelled);
    }

    /// <summary>A pending line that could not become a job: <c>errored</c> with the problem's code and detail. Returns the batch's status.</summary>
    public async Task<string> RecordErrorAsync(string id, int line, string code, string message, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            UPDATE batch_lines SET status = 'errored', error_code = $3, error_message = $4, body = NULL
            WHERE batch_id = $1 AND line = $2 AND status = 'pending'
            """);
        command.Parameters.Add(Text(id));
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = line });
        command.Parameters.Add(Text(code));
        command.Parameters.Add(Text(message.Length > 1000 ? message[..1000] : message));
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return await StatusAsync(id, cancellationToken).ConfigureAwait(false) ?? BatchStatuses.Cancelled;
    }

    public async Task<string?> StatusAsync(string id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT status FROM batches WHERE id = $1");
        command.Parameters.Add(Text(id));
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
    }

    /// <summary>The batch's tenant and status, or null when there is no such batch.</summary>
    public async Task<(string TenantId, string Status)?> HeadAsync(string id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT tenant_id, status FROM batches WHERE id = $1");
        command.Parameters.Add(Text(id));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? (reader.GetString(0), reader.GetString(1)) : null;
    }

    /// <summary>Batches whose lines are being made into jobs or whose jobs are running (in_progress or cancelling).</summary>
    public async Task<IReadOnlyList<string>> LiveAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT id FROM batches WHERE status IN ('in_progress', 'cancelling') ORDER BY id LIMIT 1000");
        var ids = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }

    /// <summary>
    /// The tenant's batch → <c>cancelling</c> (from validating or in_progress) and its pending lines →
    /// <c>cancelled</c>, in one transaction. Null when there is no such batch of the tenant; else its
    /// status before.
    /// </summary>
    public async Task<string?> BeginCancelAsync(string id, string tenantId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        string? before;
        await using (var command = new NpgsqlCommand("SELECT status FROM batches WHERE id = $1 AND tenant_id = $2 FOR UPDATE", connection, transaction))
        {
            command.Parameters.Add(Text(id));
            command.Parameters.Add(Text(tenantId));
            before = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
        }

        if (before is BatchStatuses.Validating or BatchStatuses.InProgress)
        {
            await using (var command = new NpgsqlCommand(
                "UPDATE batches SET status = 'cancelling', cancelled_at = now() WHERE id = $1", connection, transaction))
            {
                command.Parameters.Add(Text(id));
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            await using (var command = new NpgsqlCommand(
                "UPDATE batch_lines SET status = 'cancelled', body = NULL WHERE batch_id = $1 AND status = 'pending'", connection, transaction))
            {
                command.Parameters.Add(Text(id));
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return before;
    }

    /// <summary>Every pending line of the batch → <c>cancelled</c> (a chunk found the batch cancelling).</summary>
    public async Task CancelPendingAsync(string id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("UPDATE batch_lines SET status = 'cancelled', body = NULL WHERE batch_id = $1 AND status = 'pending'");
        command.Parameters.Add(Text(id));
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The next <paramref name="count"/> jobs of the batch still queued or running, after <paramref name="afterLine"/>.</summary>
    public async Task<IReadOnlyList<(int Line, string JobId)>> LiveJobsAsync(string id, int afterLine, int count, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT line, job_id FROM batch_lines
            WHERE batch_id = $1 AND line > $2 AND status IN ('pending', 'queued', 'running') AND job_id IS NOT NULL
            ORDER BY line LIMIT $3
            """);
        command.Parameters.Add(Text(id));
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = afterLine });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = count });
        var jobs = new List<(int, string)>(count);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            jobs.Add((reader.GetInt32(0), reader.GetString(1)));
        }

        return jobs;
    }

    /// <summary>
    /// Moves the lines of these jobs to the jobs' statuses (state, not events: applying the same
    /// states twice changes nothing; a line never leaves a terminal status). Returns the batches of
    /// the lines that ended here, for the completion check.
    /// </summary>
    public async Task<IReadOnlyList<string>> ApplyJobStatusesAsync(IReadOnlyCollection<(string JobId, string Status)> jobs, CancellationToken cancellationToken)
    {
        if (jobs.Count == 0)
        {
            return [];
        }

        await using var command = dataSource.CreateCommand("""
            UPDATE batch_lines l SET status = u.status
            FROM unnest($1::text[], $2::text[]) AS u(job_id, status)
            WHERE l.job_id = u.job_id AND l.status IN ('queued', 'running') AND l.status <> u.status
              AND u.status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'expired')
            RETURNING l.batch_id, l.status
            """);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. jobs.Select(j => j.JobId)] });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. jobs.Select(j => j.Status)] });
        var ended = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (TerminalJobStatuses.Contains(reader.GetString(1)))
            {
                ended.Add(reader.GetString(0));
            }
        }

        return [.. ended];
    }

    /// <summary>
    /// Ends each of these batches whose lines have all ended: <c>completed</c> (or <c>cancelled</c>
    /// after a cancel), its counts kept in its row. One statement per batch, so of any number of
    /// concurrent checks exactly one ends it; returns the batches ended by this call.
    /// </summary>
    public async Task<IReadOnlyList<BatchRecord>> CompleteIfDoneAsync(IEnumerable<string> ids, CancellationToken cancellationToken)
    {
        var idArray = ids.Distinct(StringComparer.Ordinal).ToArray();
        if (idArray.Length == 0)
        {
            return [];
        }

        await using var command = dataSource.CreateCommand($"""
            UPDATE batches b SET
                status = CASE WHEN b.status = 'cancelling' THEN 'cancelled' ELSE 'completed' END,
                completed_at = now(),
                final_counts = (SELECT jsonb_object_agg(s.status, s.n) FROM (
                    SELECT status, count(*) AS n FROM batch_lines WHERE batch_id = b.id GROUP BY status) s)
            WHERE b.id = ANY($1) AND b.status IN ('in_progress', 'cancelling')
              AND NOT EXISTS (SELECT 1 FROM batch_lines l WHERE l.batch_id = b.id AND l.status IN ('pending', 'queued', 'running'))
            RETURNING {BatchColumns}
            """);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = idArray });
        return await ReadBatchesAsync(command, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The batch's <c>batch.completed</c> webhook was handed to Hangfire.</summary>
    public async Task MarkWebhookEnqueuedAsync(string id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("UPDATE batches SET webhook_enqueued_at = now() WHERE id = $1");
        command.Parameters.Add(Text(id));
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Ended batches with a webhook that was never handed to Hangfire (the process stopped in between), ended before <paramref name="endedBefore"/>.</summary>
    public async Task<IReadOnlyList<BatchRecord>> UnannouncedAsync(DateTimeOffset endedBefore, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT {BatchColumns} FROM batches
            WHERE status IN ('completed', 'cancelled') AND webhook_url IS NOT NULL AND webhook_enqueued_at IS NULL AND completed_at < $1
            ORDER BY completed_at LIMIT 100
            """);
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = endedBefore.ToUniversalTime() });
        return await ReadBatchesAsync(command, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Batches still <c>validating</c> since before <paramref name="createdBefore"/> (their start job was never enqueued).</summary>
    public async Task<IReadOnlyList<string>> StalledAsync(DateTimeOffset createdBefore, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT id FROM batches WHERE status = 'validating' AND created_at < $1 ORDER BY id LIMIT 100");
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = createdBefore.ToUniversalTime() });
        var ids = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }

    /// <summary>The next <paramref name="count"/> lines after <paramref name="afterLine"/>, in input order.</summary>
    public async Task<IReadOnlyList<BatchLine>> LinesAsync(string id, int afterLine, int count, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT line, custom_id, job_id, status, error_code, error_message FROM batch_lines
            WHERE batch_id = $1 AND line > $2 ORDER BY line LIMIT $3
            """);
        command.Parameters.Add(Text(id));
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = afterLine });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = count });
        var lines = new List<BatchLine>(count);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            lines.Add(new BatchLine(
                reader.GetInt32(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetString(4), reader.IsDBNull(5) ? null : reader.GetString(5)));
        }

        return lines;
    }

    private static async Task<List<BatchRecord>> ReadBatchesAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var batches = new List<BatchRecord>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            DateTimeOffset? Time(int i) => reader.IsDBNull(i) ? null : reader.GetFieldValue<DateTimeOffset>(i);
            var counts = reader.IsDBNull(10)
                ? new Dictionary<string, int>(StringComparer.Ordinal)
                : JsonSerializer.Deserialize<Dictionary<string, int>>(reader.GetString(10)) ?? [];
            batches.Add(new BatchRecord(
                reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt32(3),
                reader.IsDBNull(4) ? null : reader.GetString(4), reader.IsDBNull(5) ? null : reader.GetString(5),
                reader.GetFieldValue<DateTimeOffset>(6), Time(7), Time(8), Time(9), counts));
        }

        return batches;
    }

    /// <summary>The counts of the batches still running, counted now (an ended batch has them in its row).</summary>
    private async Task<IReadOnlyList<BatchRecord>> WithCountsAsync(List<BatchRecord> batches, CancellationToken cancellationToken)
    {
        var live = batches.Where(b => !BatchStatuses.IsEnded(b.Status)).Select(b => b.Id).ToArray();
        if (live.Length == 0)
        {
            return batches;
        }

        await using var command = dataSource.CreateCommand("SELECT batch_id, status, count(*)::int FROM batch_lines WHERE batch_id = ANY($1) GROUP BY batch_id, status");
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = live });
        var counts = live.ToDictionary(id => id, _ => new Dictionary<string, int>(StringComparer.Ordinal), StringComparer.Ordinal);
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                counts[reader.GetString(0)][reader.GetString(1)] = reader.GetInt32(2);
            }
        }

        return [.. batches.Select(b => counts.TryGetValue(b.Id, out var c) ? b with { Counts = c } : b)];
    }

    private static NpgsqlParameter Text(string? value) =>
        new() { NpgsqlDbType = NpgsqlDbType.Text, Value = (object?)value ?? DBNull.Value };
}

/// <summary>
/// A batch being uploaded: its lines go into <c>batch_lines</c> by binary COPY as they are read, one
/// line in memory at a time; <see cref="CommitAsync"/> adds the batch's row and commits, disposing
/// without it rolls everything back.
/// </summary>
public sealed class BatchUploadWriter(string batchId, NpgsqlConnection connection, NpgsqlTransaction transaction, NpgsqlBinaryImporter importer) : IAsyncDisposable
{
    private bool _importing = true;

    public async Task AddLineAsync(int line, string customId, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        await importer.StartRowAsync(cancellationToken).ConfigureAwait(false);
        await importer.WriteAsync(batchId, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
        await importer.WriteAsync(line, NpgsqlDbType.Integer, cancellationToken).ConfigureAwait(false);
        await importer.WriteAsync(customId, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
        await importer.WriteAsync(body, NpgsqlDbType.Bytea, cancellationToken).ConfigureAwait(false);
    }

    public async Task CommitAsync(BatchRecord batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        await importer.CompleteAsync(cancellationToken).ConfigureAwait(false);
        await importer.DisposeAsync().ConfigureAwait(false);
        _importing = false;
        await using (var command = new NpgsqlCommand("""
            INSERT INTO batches (id, tenant_id, status, total, webhook_url, metadata, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """, connection, transaction))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = batch.Id });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = batch.TenantId });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = batch.Status });
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = batch.Total });
            command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = (object?)batch.WebhookUrl ?? DBNull.Value });
            command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = (object?)batch.MetadataJson ?? DBNull.Value });
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = batch.CreatedAt.ToUniversalTime() });
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_importing)
        {
            // Disposing an importer that was not completed cancels the COPY.
            try
            {
                await importer.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or PostgresException or OperationCanceledException)
            {
                // The connection is discarded below anyway.
            }
        }

        await transaction.DisposeAsync().ConfigureAwait(false);
        await connection.DisposeAsync().ConfigureAwait(false);
    }
}
