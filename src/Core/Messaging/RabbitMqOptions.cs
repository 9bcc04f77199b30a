using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Messaging;

/// <summary>Where the broker is (section <c>Serving:RabbitMq</c>).</summary>
public sealed class RabbitMqOptions
{
    public const string Section = "Serving:RabbitMq";

    [Required]
    public string Host { get; set; } = "127.0.0.1";

    [Range(1, 65535)]
    public ushort Port { get; set; } = 5672;

    [Required]
    public string VirtualHost { get; set; } = "/";

    [Required]
    public string Username { get; set; } = "guest";

    [Required]
    public string Password { get; set; } = "guest";

    /// <summary>
    /// A RabbitMQ client connection factory for the few places that talk to the broker without
    /// MassTransit (queue declarations, queue depth, dead-letter queues), named for the broker's
    /// connection list.
    /// </summary>
    public RabbitMQ.Client.ConnectionFactory ConnectionFactory(string clientName) => new()
    {
        HostName = Host,
        Port = Port,
        VirtualHost = VirtualHost,
        UserName = Username,
        Password = Password,
        ClientProvidedName = clientName,
        RequestedConnectionTimeout = TimeSpan.FromSeconds(3),
    };
}
