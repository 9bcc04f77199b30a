using System.Net;
using System.Net.Sockets;

namespace Async.Serving.Api.Security;

/// <summary>
/// Decides whether the server may open a connection to an address on a client's behalf (SSRF
/// guard for <c>input.url</c>, and for webhook URLs). Only public unicast addresses pass: loopback,
/// private, shared (CGNAT), link-local, cloud metadata, unspecified, multicast, broadcast and
/// reserved ranges are refused. IPv4 embedded in IPv6 (mapped, compatible, NAT64, 6to4) is judged
/// as the IPv4 address it reaches.
/// </summary>
public static class NetworkGuard
{
    private static readonly IPAddress AwsMetadataV6 = IPAddress.Parse("fd00:ec2::254");

    /// <summary>True when the address is public unicast.</summary>
    public static bool IsAllowed(IPAddress address) => Classify(address) is null;

    /// <summary>Why the address is refused (e.g. "loopback", "private"), or null when it is public.</summary>
    public static string? Classify(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            return ClassifyV4(address.MapToIPv4());
        }

        return address.AddressFamily switch
        {
            AddressFamily.InterNetwork => ClassifyV4(address),
            AddressFamily.InterNetworkV6 => ClassifyV6(address),
            _ => "not IP",
        };
    }

    private static string? ClassifyV4(IPAddress address)
    {
        Span<byte> b = stackalloc byte[4];
        address.TryWriteBytes(b, out _);
        return (b[0], b[1], b[2], b[3]) switch
        {
            (169, 254, 169, 254) => "cloud metadata",
            (0, _, _, _) => "unspecified",
            (10, _, _, _) => "private",
            (100, >= 64 and <= 127, _, _) => "shared (CGNAT)",
            (127, _, _, _) => "loopback",
            (169, 254, _, _) => "link-local",
            (172, >= 16 and <= 31, _, _) => "private",
            (192, 0, 0, _) => "reserved", // IETF protocol assignments, among them 192.0.0.192 (a metadata service)
            (192, 0, 2, _) or (198, 51, 100, _) or (203, 0, 113, _) => "reserved", // documentation
            (192, 168, _, _) => "private",
            (198, 18 or 19, _, _) => "reserved", // benchmarking
            (255, 255, 255, 255) => "broadcast",
            ( >= 224 and <= 239, _, _, _) => "multicast",
            ( >= 240, _, _, _) => "reserved",
            _ => null,
        };
    }

    private static string? ClassifyV6(IPAddress address)
    {
        if (address.Equals(IPAddress.IPv6Any))
        {
            return "unspecified";
        }

        if (address.Equals(IPAddress.IPv6Loopback))
        {
            return "loopback";
        }

        // Compare without the scope id (fe80::1%2 is still link-local).
        Span<byte> b = stackalloc byte[16];
        address.TryWriteBytes(b, out _);
        if (new IPAddress(b).Equals(AwsMetadataV6))
        {
            return "cloud metadata";
        }

        if (b[..12].IndexOfAnyExcept((byte)0) < 0)
        {
            return "reserved"; // ::a.b.c.d, IPv4-compatible (deprecated)
        }

        // 64:ff9b::/96 (NAT64) and 2002::/16 (6to4) reach the IPv4 address they carry.
        if (b[..12].SequenceEqual((ReadOnlySpan<byte>)[0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0]))
        {
            return ClassifyV4(new IPAddress(b[12..]));
        }

        if (b[0] == 0x20 && b[1] == 0x02)
        {
            return ClassifyV4(new IPAddress(b[2..6]));
        }

        return b switch
        {
            [0xff, ..] => "multicast",
            [0xfe, >= 0x80 and <= 0xbf, ..] => "link-local",
            [0xfe, >= 0xc0, ..] => "private", // site-local (deprecated)
            [0xfc or 0xfd, ..] => "private", // unique local
            [0x20, 0x01, 0x00, 0x00, ..] => "reserved", // Teredo
            [0x20, 0x01, 0x0d, 0xb8, ..] => "reserved", // documentation
            [0x01, 0x00, 0, 0, 0, 0, 0, 0, ..] => "reserved", // discard-only
            _ => null,
        };
    }
}
