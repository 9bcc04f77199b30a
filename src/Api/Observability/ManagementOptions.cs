using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.Observability;

/// <summary>Section <c>Serving:Management</c>: the API's management port, where <c>/metrics</c> is served (never on the public port).</summary>
public sealed class ManagementOptions
{
    public const string Section = "Serving:Management";

    /// <summary>Address the management port binds: loopback by default; <c>0.0.0.0</c> in a container that Prometheus scrapes.</summary>
    [Required]
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>Port of <c>/metrics</c> (and <c>/healthz</c>, <c>/readyz</c>); 0 turns it off, and with it the metrics endpoint.</summary>
    [Range(0, 65535)]
    public int Port { get; set; } = 9465;
}
