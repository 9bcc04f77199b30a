using Hangfire.States;

namespace Async.Serving.Api.Webhooks;

/// <summary>
/// Puts every <see cref="WebhookDelivery"/> job on the configured queue whenever it is enqueued: at
/// once, or when a scheduled retry comes due. (A <c>[Queue]</c> attribute could only name a constant.)
/// </summary>
internal sealed class WebhookQueueFilter(string queue) : IElectStateFilter
{
    public void OnStateElection(ElectStateContext context)
    {
        if (context.CandidateState is EnqueuedState enqueued && context.BackgroundJob.Job?.Type == typeof(WebhookDelivery))
        {
            enqueued.Queue = queue;
        }
    }
}
