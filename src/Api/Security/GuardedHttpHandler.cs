using System.Net;
using System.Net.Sockets;

namespace Async.Serving.Api.Security;

/// <summary>
/// The primary handler for HTTP clients that call URLs a client gave us (<c>input.url</c>, later
/// webhooks). DNS is resolved inside the connect callback, every resolved address is checked by
/// <see cref="NetworkGuard"/>, and the socket connects to one of those checked addresses: there is
/// no second lookup an attacker could answer differently (DNS rebinding). No proxy is used (the
/// guard would otherwise judge the proxy, not the target) and redirects are not followed, so
/// the caller checks each hop's URL and each hop connects through this callback again.
/// </summary>
public static class GuardedHttpHandler
{
    public static SocketsHttpHandler Create(NetworkSecurityOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var allowPrivate = options.AllowPrivateNetworks;
        return new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
            ConnectCallback = (context, cancellationToken) => ConnectAsync(context.DnsEndPoint, allowPrivate, cancellationToken),
        };
    }

    /// <summary>Resolves, checks every address, then connects to the first checked address that answers.</summary>
    public static async ValueTask<Stream> ConnectAsync(DnsEndPoint endPoint, bool allowPrivate, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        var host = endPoint.Host.TrimStart('[').TrimEnd(']');
        var addresses = IPAddress.TryParse(host, out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        if (addresses.Length == 0)
        {
            throw new SocketException((int)SocketError.HostNotFound);
        }

        if (!allowPrivate)
        {
            // All of them, not only the one we would connect to: a name with one public and one
            // private address must not get through by the order of the answer.
            foreach (var address in addresses)
            {
                if (NetworkGuard.Classify(address) is { } category)
                {
                    throw new RefusedAddressException(host, category);
                }
            }
        }

        Exception? last = null;
        foreach (var address in addresses)
        {
            var target = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
            var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(target, endPoint.Port), cancellationToken).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                last = ex;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        throw last!;
    }
}
