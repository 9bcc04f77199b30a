using System.ComponentModel.DataAnnotations;
using Async.Serving.Api.Observability;

namespace Async.Serving.UnitTests;

public sealed class ManagementPortTests
{
    private static readonly ManagementOptions Options = new() { Host = "127.0.0.1", Port = 9465 };

    [Theory]
    [InlineData("http://127.0.0.1:5080", null, "http://127.0.0.1:5080;http://127.0.0.1:9465")]
    [InlineData("http://+:8080;https://+:8443;", "8080", "http://+:8080;https://+:8443;http://127.0.0.1:9465")]
    [InlineData(null, "8080", "http://*:8080;http://127.0.0.1:9465")]            // ASPNETCORE_HTTP_PORTS, as the aspnet images set it
    [InlineData("", "8080; 8081", "http://*:8080;http://*:8081;http://127.0.0.1:9465")]
    [InlineData(null, null, "http://localhost:5000;http://127.0.0.1:9465")]       // Kestrel's own default stays
    public void The_management_address_is_added_to_the_public_ones_which_are_kept(string? urls, string? httpPorts, string expected) =>
        Assert.Equal(expected, ManagementPort.ServerUrls(urls, httpPorts, Options));

    [Theory]
    [InlineData("127.0.0.1", 9465, true)]
    [InlineData("0.0.0.0", 0, true)]      // 0: no management port, and no /metrics
    [InlineData("127.0.0.1", 70000, false)]
    [InlineData("127.0.0.1", -1, false)]
    [InlineData("", 9465, false)]
    public void Management_options_out_of_range_are_refused(string host, int port, bool valid)
    {
        var options = new ManagementOptions { Host = host, Port = port };
        Assert.Equal(valid, Validator.TryValidateObject(options, new ValidationContext(options), null, validateAllProperties: true));
    }
}
