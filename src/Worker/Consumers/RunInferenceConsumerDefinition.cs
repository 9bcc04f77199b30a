using MassTransit;

namespace Async.Serving.Worker.Consumers;

/// <summary>
/// Retries a consume that threw for an infrastructure reason (Redis or the broker blinked) a few
/// times in place. Job-level failures never throw: they end the job <c>failed</c> with a code.
/// Prefetch and concurrency are set per model queue in <see cref="Hosting.WorkerHostExtensions"/>.
/// The retry is the consumer's, not the endpoint's: a lane's endpoint has both job consumers, and
/// each message goes to one of them.
/// </summary>
internal sealed class RunInferenceConsumerDefinition : ConsumerDefinition<RunInferenceConsumer>
{
    internal static void Retry(IRetryConfigurator retry) => retry.Intervals(200, 1000, 5000);

    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<RunInferenceConsumer> consumerConfigurator,
        IRegistrationContext context)
    {
        consumerConfigurator.UseMessageRetry(Retry);
    }
}

/// <summary>The same retry for a message of several jobs (<see cref="RunInferenceBatchConsumer"/>).</summary>
internal sealed class RunInferenceBatchConsumerDefinition : ConsumerDefinition<RunInferenceBatchConsumer>
{
    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<RunInferenceBatchConsumer> consumerConfigurator,
        IRegistrationContext context)
    {
        consumerConfigurator.UseMessageRetry(RunInferenceConsumerDefinition.Retry);
    }
}
