using System.ComponentModel.DataAnnotations;

namespace Async.Serving.Api.Routing;

/// <summary>Section <c>Serving:Routing</c>: weighted routing of a model name to its versions.</summary>
public sealed class RoutingOptions
{
    public const string Section = "Serving:Routing";

    /// <summary>
    /// How long an API instance keeps a model's routing table before reading Redis again. A change is
    /// seen at once by the instance that made it and, through a Redis message, by the others; this is
    /// the bound for an instance that missed the message. 0 reads Redis on every submit.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:01")]
    public TimeSpan CacheDuration { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The tenants whose admin keys may change routing tables (the tables are shared by every tenant).
    /// Empty: any admin key may, which suits a deployment of one tenant.
    /// </summary>
    public string[] ManagingTenants { get; set; } = [];
}
