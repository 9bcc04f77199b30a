using Async.Serving.Api.Ledger;

namespace Async.Serving.Api.Batches;

/// <summary>
/// The ledger writer's sink with batches added: the writer sees every state change of every job (the
/// webhook outbox only those a webhook subscribed to), so after each ledger batch is written the
/// lines of the jobs in it take their jobs' current states, and a batch whose last line ended is
/// completed. Idempotent (states, not increments): a ledger batch written twice changes nothing more.
/// A failure here fails the ledger batch, which is then written again, as for any sink failure.
/// </summary>
internal sealed class BatchLedgerSink(ILedgerSink inner, BatchStore store, BatchCompletion completion) : ILedgerSink
{
    public async Task WriteAsync(LedgerBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        await inner.WriteAsync(batch, cancellationToken).ConfigureAwait(false);
        var ended = await store.ApplyJobStatusesAsync([.. batch.Jobs.Select(j => (j.Id, j.Status))], cancellationToken).ConfigureAwait(false);
        await completion.CheckAsync(ended, cancellationToken).ConfigureAwait(false);
    }

    public bool IsTransient(Exception exception) => inner.IsTransient(exception);
}
