using System.Net;
using Async.Serving.Api.Security;

namespace Async.Serving.UnitTests;

public sealed class NetworkGuardTests
{
    [Theory]
    [InlineData("127.0.0.1", "loopback")]
    [InlineData("127.255.0.9", "loopback")]
    [InlineData("::1", "loopback")]
    [InlineData("10.1.2.3", "private")]
    [InlineData("172.16.0.1", "private")]
    [InlineData("172.31.255.255", "private")]
    [InlineData("192.168.1.1", "private")]
    [InlineData("169.254.169.254", "cloud metadata")]
    [InlineData("169.254.1.1", "link-local")]
    [InlineData("100.64.0.1", "shared (CGNAT)")]
    [InlineData("100.127.255.254", "shared (CGNAT)")]
    [InlineData("::ffff:127.0.0.1", "loopback")]
    [InlineData("::ffff:10.0.0.1", "private")]
    [InlineData("::ffff:169.254.169.254", "cloud metadata")]
    [InlineData("fe80::1", "link-local")]
    [InlineData("fe80::1%2", "link-local")]
    [InlineData("fd00::1", "private")]
    [InlineData("fc00::1", "private")]
    [InlineData("fd00:ec2::254", "cloud metadata")]
    [InlineData("0.0.0.0", "unspecified")]
    [InlineData("0.1.2.3", "unspecified")]
    [InlineData("::", "unspecified")]
    [InlineData("224.0.0.1", "multicast")]
    [InlineData("239.255.255.250", "multicast")]
    [InlineData("ff02::1", "multicast")]
    [InlineData("255.255.255.255", "broadcast")]
    [InlineData("240.0.0.1", "reserved")]
    [InlineData("::127.0.0.1", "reserved")]
    [InlineData("64:ff9b::7f00:1", "loopback")] // NAT64 of 127.0.0.1
    [InlineData("2002:a00:1::1", "private")] // 6to4 of 10.0.0.1
    public void Refused_addresses_are_named(string address, string category)
    {
        var ip = IPAddress.Parse(address);
        Assert.False(NetworkGuard.IsAllowed(ip));
        Assert.Equal(category, NetworkGuard.Classify(ip));
    }

    [Theory]
    [InlineData("8.8.8.8")]
    [InlineData("1.1.1.1")]
    [InlineData("172.32.0.1")]
    [InlineData("172.15.255.255")]
    [InlineData("100.63.255.255")]
    [InlineData("100.128.0.1")]
    [InlineData("169.255.0.1")]
    [InlineData("192.169.0.1")]
    [InlineData("223.255.255.254")]
    [InlineData("2001:4860:4860::8888")]
    [InlineData("2606:4700:4700::1111")]
    [InlineData("::ffff:8.8.8.8")]
    [InlineData("64:ff9b::808:808")] // NAT64 of 8.8.8.8
    public void Public_addresses_are_allowed(string address)
    {
        var ip = IPAddress.Parse(address);
        Assert.True(NetworkGuard.IsAllowed(ip), NetworkGuard.Classify(ip));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("[::1]")]
    [InlineData("localhost")]
    public async Task The_connect_callback_refuses_before_it_opens_a_socket(string host)
    {
        var refused = await Assert.ThrowsAsync<RefusedAddressException>(async () =>
            await GuardedHttpHandler.ConnectAsync(new DnsEndPoint(host, 9), allowPrivate: false, CancellationToken.None));
        Assert.Equal("loopback", refused.Category);
    }

    [Fact]
    public async Task A_guarded_client_wraps_the_refusal_so_callers_can_find_it()
    {
        using var handler = GuardedHttpHandler.Create(new NetworkSecurityOptions());
        using var client = new HttpClient(handler);
        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync(new Uri("http://127.0.0.1:9/")));
        Assert.Equal("loopback", RefusedAddressException.Find(ex)?.Category);
    }
}
