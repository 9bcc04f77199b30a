using System.Net;
using System.Net.Sockets;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Webhooks;

/// <summary>
/// The SSRF guard at submit: a webhook URL whose host resolves to a loopback, private, link-local
/// or metadata address is refused now, so the client learns it at once. The guarded handler judges
/// the address again at every delivery, since DNS may answer differently later.
/// </summary>
internal sealed class WebhookUrlCheck(IOptions<NetworkSecurityOptions> security)
{
    /// <summary>A resolver that hangs must not hold the submit for the system's resolver timeout.</summary>
    private static readonly TimeSpan ResolveTimeout = TimeSpan.FromSeconds(5);

    public async Task<ProblemHttpResult?> RefusalAsync(WebhookSubscription webhook, CancellationToken cancellationToken)
    {
        if (security.Value.AllowPrivateNetworks)
        {
            return null;
        }

        var uri = new Uri(webhook.Url);
        var host = uri.IdnHost.TrimStart('[').TrimEnd(']');
        IPAddress[] addresses;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ResolveTimeout);
        try
        {
            addresses = IPAddress.TryParse(host, out var literal)
                ? [literal]
                : await Dns.GetHostAddressesAsync(host, timeout.Token).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            return Refused($"webhook.url's host '{host}' could not be resolved.");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return Refused($"webhook.url's host '{host}' could not be resolved within {ResolveTimeout.TotalSeconds:0} s.");
        }

        foreach (var address in addresses)
        {
            if (NetworkGuard.Classify(address) is { } category)
            {
                return Refused($"webhook.url resolves to a {category} address ({address}); webhooks are delivered only to public addresses.");
            }
        }

        return addresses.Length == 0 ? Refused($"webhook.url's host '{host}' has no address.") : null;
    }

    private static ProblemHttpResult Refused(string detail) =>
        ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, ApiProblems.InputInvalid, "The webhook URL is not allowed.", detail,
            new Dictionary<string, string[]> { ["webhook.url"] = [detail] });
}
