using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using SkiaSharp;
using StackExchange.Redis;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// <c>input.url</c> against a local server on 127.0.0.1 (no other network is touched), and the
/// pixel limit at the door.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class InputUrlTests(ServingFixture serving)
{
    private static Task<HttpResponseMessage> SubmitUrlAsync(HttpClient client, string url) =>
        client.PostAsJsonAsync("/v1/jobs", new { pipeline = "image.embed", input = new { url } });

    private static string Detail(JsonElement problem) => problem.GetProperty("detail").GetString()!;

    private Dictionary<string, string?> PrivateNetworksAllowed(string tenant) => new()
    {
        ["Serving:Security:AllowPrivateNetworks"] = "true",
        ["Serving:Limits:FetchTimeout"] = "00:00:01",
        ["Serving:Auth:DevelopmentTenant"] = tenant,
    };

    private async Task AssertNoJobsAsync(string tenant)
    {
        var redis = serving.Api.Services.GetRequiredService<IConnectionMultiplexer>();
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        await foreach (var key in server.KeysAsync(pattern: "*:job:*"))
        {
            Assert.NotEqual(tenant, (string?)await redis.GetDatabase().HashGetAsync(key, "tenant"));
        }
    }

    private static string NewTenant(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task By_default_a_url_to_a_loopback_address_is_refused_and_nothing_is_fetched()
    {
        await using var remote = await LocalImageServer.StartAsync();
        using var client = serving.Client();
        var port = remote.BaseAddress.Port;

        foreach (var url in new[]
        {
            remote.Url("/image.jpg").ToString(),
            $"http://localhost:{port}/image.jpg",
            $"http://[::1]:{port}/image.jpg",
            $"http://[::ffff:127.0.0.1]:{port}/image.jpg",
            $"http://2130706433:{port}/image.jpg", // 127.0.0.1 as one number
        })
        {
            var problem = await Problems.AssertAsync(await SubmitUrlAsync(client, url), HttpStatusCode.UnprocessableEntity, "input_invalid");
            Assert.Contains("resolves to a private address (loopback)", Detail(problem), StringComparison.Ordinal);
        }

        Assert.Empty(remote.Requests);
    }

    [Fact]
    public async Task Only_absolute_http_and_https_urls_are_taken()
    {
        using var client = serving.Client();
        foreach (var url in new[] { "ftp://127.0.0.1/image.jpg", "file:///etc/passwd", "/image.jpg", "gopher://127.0.0.1:70/", "not a url" })
        {
            var problem = await Problems.AssertAsync(await SubmitUrlAsync(client, url), HttpStatusCode.BadRequest, "input_invalid");
            Assert.True(problem.GetProperty("errors").TryGetProperty("input.url", out _), url);
        }

        var both = await client.PostAsJsonAsync("/v1/jobs", new
        {
            pipeline = "image.embed",
            input = new { url = "http://127.0.0.1/image.jpg", base64 = Convert.ToBase64String(TestImages.Scene(1)) },
        });
        await Problems.AssertAsync(both, HttpStatusCode.BadRequest, "input_invalid");
    }

    [Fact]
    public async Task Fields_are_checked_before_anything_is_fetched()
    {
        await using var remote = await LocalImageServer.StartAsync();
        await using var api = serving.CreateApi(PrivateNetworksAllowed(NewTenant("fields")));
        using var client = serving.Client(api);

        var response = await client.PostAsJsonAsync("/v1/jobs", new { pipeline = "image.embed", model = "resnet18@9", input = new { url = remote.Url("/image.jpg") } });

        await Problems.AssertAsync(response, HttpStatusCode.UnprocessableEntity, "unknown_model");
        Assert.Empty(remote.Requests);
    }

    [Fact]
    public async Task With_private_networks_allowed_a_url_is_fetched_and_embedded()
    {
        await using var remote = await LocalImageServer.StartAsync();
        await using var api = serving.CreateApi(PrivateNetworksAllowed(NewTenant("url")));
        using var client = serving.Client(api);

        var direct = await SubmitUrlAsync(client, remote.Url("/image.jpg").ToString());
        var redirected = await SubmitUrlAsync(client, remote.Url("/redirect/3").ToString());

        await Problems.AssertStatusAsync(direct, HttpStatusCode.Accepted);
        await Problems.AssertStatusAsync(redirected, HttpStatusCode.Accepted);
        Assert.Equal(["/image.jpg", "/redirect/3", "/redirect/2", "/redirect/1", "/redirect/0"], remote.Requests);
        foreach (var ticket in new[] { direct, redirected })
        {
            var id = (await ticket.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            var job = await ServingFixture.WaitForTerminalAsync(client, id);
            Assert.Equal("succeeded", job.GetProperty("status").GetString());
            Assert.Equal(512, job.GetProperty("output").GetProperty("embedding").GetArrayLength());
        }
    }

    [Fact]
    public async Task Fetch_failures_get_the_contract_codes_and_store_no_job()
    {
        var tenant = NewTenant("fetchfail");
        await using var remote = await LocalImageServer.StartAsync(hugeBytes: 300_000);
        var settings = PrivateNetworksAllowed(tenant);
        settings["Serving:Limits:MaxImageBytes"] = "100000";
        await using var api = serving.CreateApi(settings);
        using var client = serving.Client(api);

        var tooManyRedirects = await Problems.AssertAsync(await SubmitUrlAsync(client, remote.Url("/redirect/4").ToString()),
            HttpStatusCode.UnprocessableEntity, "input_invalid");
        Assert.Contains("more than 3", Detail(tooManyRedirects), StringComparison.Ordinal);
        Assert.DoesNotContain("/redirect/0", remote.Requests);

        var ftp = await Problems.AssertAsync(await SubmitUrlAsync(client, remote.Url("/redirect-to-ftp").ToString()),
            HttpStatusCode.UnprocessableEntity, "input_invalid");
        Assert.Contains("ftp", Detail(ftp), StringComparison.Ordinal);

        var declared = await Problems.AssertAsync(await SubmitUrlAsync(client, remote.Url("/huge").ToString()),
            HttpStatusCode.RequestEntityTooLarge, "input_too_large");
        Assert.Contains("300,000", Detail(declared), StringComparison.Ordinal);
        await Problems.AssertAsync(await SubmitUrlAsync(client, remote.Url("/huge-streamed").ToString()),
            HttpStatusCode.RequestEntityTooLarge, "input_too_large");

        var missing = await Problems.AssertAsync(await SubmitUrlAsync(client, remote.Url("/missing").ToString()),
            HttpStatusCode.UnprocessableEntity, "input_invalid");
        Assert.Contains("404", Detail(missing), StringComparison.Ordinal);

        // A page's address copied from the browser instead of its image's: the refusal says so.
        var page = await Problems.AssertAsync(await SubmitUrlAsync(client, remote.Url("/photo-page").ToString()),
            HttpStatusCode.UnprocessableEntity, "input_invalid");
        Assert.Contains("they are an HTML page (a web page, not the file it shows: link the file itself)", Detail(page), StringComparison.Ordinal);

        var started = DateTime.UtcNow;
        var slow = await Problems.AssertAsync(await SubmitUrlAsync(client, remote.Url("/slow").ToString()),
            HttpStatusCode.UnprocessableEntity, "input_invalid");
        Assert.Contains("within 1 s", Detail(slow), StringComparison.Ordinal);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(8), "the fetch was not cut off by FetchTimeout");

        // A port nothing listens on.
        var closed = await Problems.AssertAsync(await SubmitUrlAsync(client, "http://127.0.0.1:1/image.jpg"),
            HttpStatusCode.UnprocessableEntity, "input_invalid");
        Assert.Contains("could not be fetched", Detail(closed), StringComparison.Ordinal);

        await AssertNoJobsAsync(tenant);
    }

    [Fact]
    public async Task An_image_declaring_too_many_pixels_is_refused_at_the_door_and_not_stored()
    {
        var tenant = NewTenant("pixels");
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Auth:DevelopmentTenant"] = tenant });
        using var client = serving.Client(api);
        var png = PngDeclaring(30_000, 30_000);

        var base64 = await Problems.AssertAsync(
            await client.PostAsJsonAsync("/v1/jobs", new { pipeline = "image.embed", input = new { base64 = Convert.ToBase64String(png) } }),
            HttpStatusCode.RequestEntityTooLarge, "input_too_large");
        Assert.Contains("30,000×30,000", Detail(base64), StringComparison.Ordinal);

        using var multipart = new MultipartFormDataContent();
        var part = new ByteArrayContent(png);
        part.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        multipart.Add(part, "file", "huge.png");
        multipart.Add(new StringContent("""{"pipeline":"image.embed"}"""), "request");
        await Problems.AssertAsync(await client.PostAsync("/v1/jobs", multipart), HttpStatusCode.RequestEntityTooLarge, "input_too_large");

        await AssertNoJobsAsync(tenant);
    }

    /// <summary>A real 8×8 PNG whose IHDR is rewritten to declare <paramref name="width"/>×<paramref name="height"/> (CRC fixed).</summary>
    private static byte[] PngDeclaring(int width, int height)
    {
        using var bitmap = new SKBitmap(8, 8);
        bitmap.Erase(SKColors.Teal);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        var png = data.ToArray();

        // Signature (8), then IHDR: length (4), "IHDR" (4), width (4), height (4), 5 more bytes, CRC of type and data (4).
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(16), width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(20), height);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32(png.AsSpan(12, 17)));
        return png;
    }

    /// <summary>CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) as PNG chunks use it.</summary>
    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var i = 0; i < 8; i++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }
        }

        return ~crc;
    }
}
