using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Async.Serving.IntegrationTests;

[Collection(ServingCollection.Name)]
public sealed class DashboardTests(ServingFixture serving)
{
    [Fact]
    public async Task The_dashboard_refuses_anonymous_and_wrong_credentials_and_admits_the_admin()
    {
        using var client = serving.Api.CreateClient();
        var anonymous = await client.GetAsync("/hangfire");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Contains("Basic", anonymous.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);

        // An API key is not a dashboard credential (Hangfire answers an authenticated stranger 403).
        using var withKey = serving.Client();
        Assert.Equal(HttpStatusCode.Forbidden, (await withKey.GetAsync("/hangfire")).StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, (await Get(client, "admin", "wrong")).StatusCode);
        var admitted = await Get(client, "admin", serving.DashboardPassword);
        Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
        Assert.Contains("Async.Serving operations", await admitted.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_configured_password_nobody_gets_in()
    {
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Hangfire:DashboardPassword"] = "" });
        using var client = api.CreateClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await Get(client, "admin", "")).StatusCode);
    }

    private static async Task<HttpResponseMessage> Get(HttpClient client, string user, string password)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/hangfire");
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));
        return await client.SendAsync(request);
    }
}
