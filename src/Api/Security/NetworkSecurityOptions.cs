namespace Async.Serving.Api.Security;

/// <summary>Section <c>Serving:Security</c>: where the server may connect on a client's behalf.</summary>
public sealed class NetworkSecurityOptions
{
    public const string Section = "Serving:Security";

    /// <summary>
    /// Lets outbound fetches (<c>input.url</c>, webhooks) reach loopback, private, link-local and
    /// metadata addresses. Off by default; turn on only where every client is trusted (tests, a
    /// single-tenant install inside one network).
    /// </summary>
    public bool AllowPrivateNetworks { get; set; }
}
