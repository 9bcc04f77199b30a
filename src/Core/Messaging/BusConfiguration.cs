using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Async.Serving.Messaging;

public static class BusConfiguration
{
    /// <summary>
    /// Registers the MassTransit bus on the configured RabbitMQ broker, with publisher confirms on
    /// and usage telemetry off (the bus never calls out of the network it serves).
    /// </summary>
    public static IServiceCollection AddServingBus(
        this IServiceCollection services,
        Action<IBusRegistrationConfigurator>? registrations = null,
        Action<IBusRegistrationContext, IRabbitMqBusFactoryConfigurator>? endpoints = null)
    {
        services.AddMassTransit(x =>
        {
            x.DisableUsageTelemetry();
            registrations?.Invoke(x);
            x.UsingRabbitMq((context, cfg) =>
            {
                var options = context.GetRequiredService<IOptions<RabbitMqOptions>>().Value;
                cfg.Host(options.Host, options.Port, options.VirtualHost, h =>
                {
                    h.Username(options.Username);
                    h.Password(options.Password);
                    h.PublisherConfirmation = true;
                });
                // MassTransit writes its envelopes indented by default: a job's message was 1,412 bytes,
                // 1,208 without the indentation, and the broker stores and moves every byte of each.
                cfg.ConfigureJsonSerializerOptions(json => json.WriteIndented ? new JsonSerializerOptions(json) { WriteIndented = false } : json);
                endpoints?.Invoke(context, cfg);
            });
        });
        return services;
    }
}
