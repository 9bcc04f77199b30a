using Npgsql;

namespace Async.Serving.Api.Storage;

/// <summary>Idempotent schema set-up for the API's PostgreSQL tables.</summary>
internal static class PostgresSchema
{
    /// <summary>
    /// Runs <paramref name="ddl"/> (CREATE … IF NOT EXISTS statements) in one transaction under an
    /// advisory lock: CREATE … IF NOT EXISTS still races in the catalog when two APIs start together.
    /// Safe to run from several processes at once.
    /// </summary>
    public static async Task EnsureAsync(NpgsqlDataSource dataSource, long lockId, string ddl, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock($1)", connection, transaction))
        {
            lockCommand.Parameters.Add(new NpgsqlParameter<long> { TypedValue = lockId });
            await lockCommand.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using (var schema = new NpgsqlCommand(ddl, connection, transaction))
        {
            await schema.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }
}
