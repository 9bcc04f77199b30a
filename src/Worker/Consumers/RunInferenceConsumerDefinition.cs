using MassTransit;

namespace Async.Serving.Worker.Consumers;

/// <summary>
/// Retries a consume that threw for an infrastructure reason (Redis or the broker blinked) a few
/// times in place. Job-level failures never throw: they end the job <c>failed</c> with a code.
/// Prefetch and concurrency are set per model queue in <see cref="Hosting.WorkerHostExtensions"/>.
/// </summary>
internal sealed class RunInferenceConsumerDefinition : ConsumerDefinition<RunInferenceConsumer>
{
    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<RunInferenceConsumer> consumerConfigurator,
        IRegistrationContext context)
    {
        endpointConfigurator.UseMessageRetry(r => r.Intervals(200, 1000, 5000));
    }
}
