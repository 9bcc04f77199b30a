using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Async.Serving.Jobs;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Async.Serving.IntegrationTests;

/// <summary>Broken, oversized and badly encoded submits: the right problem, and nothing stored.</summary>
[Collection(ServingCollection.Name)]
public sealed class SubmitInputTests(ServingFixture serving)
{
    private static string NewTenant(string prefix) => $"{prefix}-{Guid.NewGuid().ToString("N")[..8]}";

    private static string ImageBase64(int seed) => Convert.ToBase64String(TestImages.Scene(seed, 64, 48));

    private static ByteArrayContent Json(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    private static ByteArrayContent Json(string body) => Json(Encoding.UTF8.GetBytes(body));

    /// <summary>An API of its own tenant, so that "nothing stored" is "the tenant's list is empty".</summary>
    private (WebApplicationFactory<Program> Api, HttpClient Client) TenantApi(IDictionary<string, string?>? overrides = null)
    {
        var settings = new Dictionary<string, string?> { ["Serving:Auth:DevelopmentTenant"] = NewTenant("input") };
        foreach (var (k, v) in overrides ?? new Dictionary<string, string?>())
        {
            settings[k] = v;
        }

        var api = serving.CreateApi(settings);
        return (api, serving.Client(api));
    }

    private static async Task AssertNothingStoredAsync(HttpClient client)
    {
        var list = await client.GetAsync("/v1/jobs");
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        var page = await list.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(0, page.GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task Text_that_is_not_valid_unicode_is_refused_400_and_nothing_is_stored()
    {
        var (api, client) = TenantApi();
        await using var owned = api;
        var image = ImageBase64(80);
        string[] bodies =
        [
            $$$"""{"pipeline":"image.embed","input":{"base64":"{{{image}}}"},"metadata":{"s":"\ud800"}}""",
            $$$"""{"pipeline":"image.embed","input":{"base64":"{{{image}}}"},"metadata":{"\udc00":"key"}}""",
            $$$"""{"pipeline":"image.embed","input":{"base64":"{{{image}}}"},"metadata":{"deep":[{"s":"a\udfffb"}]}}""",
            $$$"""{"pipeline":"image.embed","input":{"base64":"{{{image}}}"},"params":{"p":"\ud800"}}""",
            $$$"""{"pipeline":"image.embed","input":{"base64":"{{{image}}}"},"webhook":{"url":"https://example.com/\ud800"}}""",
            $$$"""{"pipeline":"image.embed","input":{"base64":"{{{image}}}"},"model":"resnet18\ud800"}""",
        ];
        foreach (var body in bodies)
        {
            var problem = await Problems.AssertAsync(await client.PostAsync("/v1/jobs", Json(body)), HttpStatusCode.BadRequest, "input_invalid");
            Assert.True(problem.TryGetProperty("errors", out _), body);
        }

        // Bytes that are not UTF-8 inside a JSON string.
        foreach (var field in new[] { "metadata", "params" })
        {
            var bytes = Encoding.UTF8.GetBytes($$$"""{"pipeline":"image.embed","input":{"base64":"{{{image}}}"},"{{{field}}}":{"s":"#"}}""");
            bytes[Array.LastIndexOf(bytes, (byte)'#')] = 0xFF;
            await Problems.AssertAsync(await client.PostAsync("/v1/jobs", Json(bytes)), HttpStatusCode.BadRequest, "input_invalid");
        }

        var pipelineBytes = Encoding.UTF8.GetBytes($$$"""{"pipeline":"image.embe#","input":{"base64":"{{{image}}}"}}""");
        pipelineBytes[Array.IndexOf(pipelineBytes, (byte)'#')] = 0xC3; // a lead byte with no continuation
        await Problems.AssertAsync(await client.PostAsync("/v1/jobs", Json(pipelineBytes)), HttpStatusCode.BadRequest, "input_invalid");

        // The request part of a multipart submit, as a form field and as a file part.
        using (var form = new MultipartFormDataContent())
        {
            form.Add(new ByteArrayContent(TestImages.Scene(81, 64, 48)) { Headers = { ContentType = new MediaTypeHeaderValue("image/jpeg") } }, "file", "a.jpg");
            form.Add(new StringContent("""{"pipeline":"image.embed","metadata":{"s":"\ud800"}}"""), "request");
            await Problems.AssertAsync(await client.PostAsync("/v1/jobs", form), HttpStatusCode.BadRequest, "input_invalid");
        }

        using (var form = new MultipartFormDataContent())
        {
            var request = Encoding.UTF8.GetBytes("""{"pipeline":"image.embed","metadata":{"s":"#"}}""");
            request[Array.IndexOf(request, (byte)'#')] = 0xFE;
            form.Add(new ByteArrayContent(TestImages.Scene(82, 64, 48)) { Headers = { ContentType = new MediaTypeHeaderValue("image/jpeg") } }, "file", "a.jpg");
            form.Add(new ByteArrayContent(request) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } }, "request", "request.json");
            await Problems.AssertAsync(await client.PostAsync("/v1/jobs", form), HttpStatusCode.BadRequest, "input_invalid");
        }

        // An Idempotency-Key is visible ASCII.
        foreach (var key in new[] { "caf\u00e9", "a\ud800b", "tab\tinside" })
        {
            using var keyed = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = Json($$$"""{"pipeline":"image.embed","input":{"base64":"{{{image}}}"}}""") };
            Assert.True(keyed.Headers.TryAddWithoutValidation("Idempotency-Key", key));
            await Problems.AssertAsync(await client.SendAsync(keyed), HttpStatusCode.BadRequest, "input_invalid");
        }

        await AssertNothingStoredAsync(client);
    }

    [Fact]
    public async Task A_stored_record_with_bad_text_does_not_break_the_list_or_the_job()
    {
        var tenant = NewTenant("badtext");
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Auth:DevelopmentTenant"] = tenant });
        var store = api.Services.GetRequiredService<RedisJobStore>();
        var ids = new List<string>();
        foreach (var metadata in new[] { """{"s":"\ud800"}""", """{"not json""", "{\"s\":\"\uFFFD\"}" })
        {
            var job = new JobRecord
            {
                Id = RedisJobStore.NewJobId(),
                TenantId = tenant,
                Status = JobStatuses.Queued,
                Pipeline = "image.embed",
                Model = "resnet18@1",
                CreatedAt = DateTimeOffset.UtcNow,
                MetadataJson = metadata,
            };
            await store.CreateAsync(job, new byte[] { 1 });
            ids.Add(job.Id);
        }

        using var client = serving.Client(api);
        var list = await client.GetAsync("/v1/jobs");
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        var listed = (await list.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("data").EnumerateArray().Select(j => j.GetProperty("id").GetString()).ToList();
        Assert.All(ids, id => Assert.Contains(id, listed));

        foreach (var id in ids)
        {
            var one = await client.GetAsync($"/v1/jobs/{id}");
            Assert.Equal(HttpStatusCode.OK, one.StatusCode);
            var job = await one.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal(id, job.GetProperty("id").GetString());
        }

        // The valid one (a replacement character is a character) is still echoed.
        var valid = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{ids[2]}");
        Assert.Equal("\uFFFD", valid.GetProperty("metadata").GetProperty("s").GetString());
        var broken = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{ids[0]}");
        Assert.Equal(JsonValueKind.Null, broken.GetProperty("metadata").ValueKind);
    }

    [Fact]
    public async Task A_json_body_over_the_limit_is_refused_413_while_it_is_read_and_nothing_is_stored()
    {
        var (api, client) = TenantApi(new Dictionary<string, string?> { ["Serving:Limits:MaxRequestBytes"] = "1048576" });
        await using var owned = api;
        var image = ImageBase64(83);
        // Valid but for its size: a small image and 2 MiB of a field nobody reads.
        var padded = Encoding.UTF8.GetBytes($$$"""{"pipeline":"image.embed","input":{"base64":"{{{image}}}"},"padding":"{{{new string('x', 2 * 1024 * 1024)}}}"}""");

        await Problems.AssertAsync(await client.PostAsync("/v1/jobs", Json(padded)), HttpStatusCode.RequestEntityTooLarge, "input_too_large");

        // Without a Content-Length (chunked): counted while read.
        var chunked = new StreamContent(new UnknownLengthStream(padded));
        chunked.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        await Problems.AssertAsync(await client.PostAsync("/v1/jobs", chunked), HttpStatusCode.RequestEntityTooLarge, "input_too_large");

        // input.base64 that decodes to more than MaxImageBytes, within MaxRequestBytes.
        var (smallImageApi, smallImageClient) = TenantApi(new Dictionary<string, string?>
        {
            ["Serving:Limits:MaxImageBytes"] = "2048",
        });
        await using (smallImageApi)
        {
            var big = Convert.ToBase64String(new byte[64 * 1024]);
            await Problems.AssertAsync(await smallImageClient.PostAsync("/v1/jobs", Json($$$"""{"input":{"base64":"{{{big}}}"},"pipeline":"image.embed"}""")),
                HttpStatusCode.RequestEntityTooLarge, "input_too_large");
            await AssertNothingStoredAsync(smallImageClient);
        }

        await AssertNothingStoredAsync(client);
    }

    [Fact]
    public async Task Base64_with_line_breaks_and_escaped_slashes_is_accepted()
    {
        using var client = serving.Client();
        var seed = Enumerable.Range(84, 50).First(s => ImageBase64(s).Contains('/'));
        var image = ImageBase64(seed);
        var escaped = string.Join("\\n", image.Replace("/", "\\/").Chunk(76).Select(c => new string(c)));
        var response = await client.PostAsync("/v1/jobs", Json($$$"""{"pipeline":"image.embed","input":{"base64":"{{{escaped}}}"}}"""));
        await Problems.AssertStatusAsync(response, HttpStatusCode.Accepted);
        var job = await ServingFixture.WaitForTerminalAsync(client, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Broken_multipart_bodies_are_400_input_invalid()
    {
        var (api, client) = TenantApi();
        await using var owned = api;
        var image = TestImages.Scene(85, 64, 48);

        // Cut off before the closing boundary.
        var head = Encoding.ASCII.GetBytes("--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n");
        var truncated = new ByteArrayContent([.. head, .. image]);
        truncated.Headers.ContentType = MediaTypeHeaderValue.Parse("multipart/form-data; boundary=XyZ");
        await Problems.AssertAsync(await client.PostAsync("/v1/jobs", truncated), HttpStatusCode.BadRequest, "input_invalid");

        // multipart/form-data without a boundary.
        var noBoundary = new ByteArrayContent([.. head, .. image, .. "\r\n--XyZ--\r\n"u8.ToArray()]);
        noBoundary.Headers.ContentType = new MediaTypeHeaderValue("multipart/form-data");
        await Problems.AssertAsync(await client.PostAsync("/v1/jobs", noBoundary), HttpStatusCode.BadRequest, "input_invalid");

        // A boundary that is not a valid one (over 70 characters).
        var longBoundary = new ByteArrayContent([.. head, .. image]);
        longBoundary.Headers.ContentType = MediaTypeHeaderValue.Parse($"multipart/form-data; boundary={new string('b', 200)}");
        await Problems.AssertAsync(await client.PostAsync("/v1/jobs", longBoundary), HttpStatusCode.BadRequest, "input_invalid");

        await AssertNothingStoredAsync(client);
    }

    /// <summary>
    /// Multipart bodies as curl writes them for someone who has not read the docs yet: a file part
    /// with no filename (<c>-F 'file=&lt;photo.jpg'</c>) is the file; fields sent as parts of their own
    /// (<c>-F pipeline=…</c>), or a file part under another name, get a 400 that says where things go
    /// and names the parts it found. Nothing is stored for those.
    /// </summary>
    [Fact]
    public async Task Curl_bodies_a_file_part_without_a_filename_is_the_file_and_parts_under_other_names_are_named()
    {
        await using var api = serving.CreateApi(new Dictionary<string, string?> { ["Serving:Auth:DevelopmentTenant"] = NewTenant("curl") });
        var url = ServingFixture.StartKestrel(api) + "/v1/jobs";
        using var client = serving.Client(api);
        var folder = Directory.CreateTempSubdirectory("serving-curl-");
        try
        {
            var photo = Path.Combine(folder.FullName, "photo.jpg");
            await File.WriteAllBytesAsync(photo, TestImages.Scene(12, 96, 64));

            async Task<(int Status, JsonElement Body)> CurlAsync(params string[] parts)
            {
                var form = string.Concat(parts.Select(p => $" -F '{p}'"));
                var run = await ScriptRunner.RunAsync($"curl -sS -w '\\n%{{http_code}}' -H 'Authorization: Bearer {serving.ApiKey}'{form} '{url}'",
                    new Dictionary<string, string>(), TimeSpan.FromMinutes(1));
                Assert.True(run.ExitCode == 0, run.ToString());
                var lines = run.Output.TrimEnd().Split('\n');
                return (int.Parse(lines[^1], System.Globalization.CultureInfo.InvariantCulture), JsonDocument.Parse(string.Join('\n', lines[..^1])).RootElement);
            }

            var fields = await CurlAsync($"file=@{photo}", "pipeline=image.embed", "model=resnet18");
            Assert.Equal(400, fields.Status);
            Assert.Equal("input_invalid", fields.Body.GetProperty("code").GetString());
            Assert.Contains("no 'request' part (its other parts: 'pipeline', 'model')", fields.Body.GetProperty("detail").GetString(), StringComparison.Ordinal);
            Assert.True(fields.Body.GetProperty("errors").TryGetProperty("request", out var _));

            var misnamed = await CurlAsync($"image=@{photo}", """request={"pipeline":"image.embed"}""");
            Assert.Equal(400, misnamed.Status);
            Assert.Contains("no 'file' part (its other parts: 'image')", misnamed.Body.GetProperty("detail").GetString(), StringComparison.Ordinal);
            await AssertNothingStoredAsync(client);

            var unnamed = await CurlAsync($"file=<{photo}", """request={"pipeline":"image.embed"}""");
            Assert.True(unnamed.Status == 202, unnamed.Body.ToString());
            var job = await ServingFixture.WaitForTerminalAsync(client, unnamed.Body.GetProperty("id").GetString()!);
            Assert.Equal("succeeded", job.GetProperty("status").GetString());
            Assert.Equal(512, job.GetProperty("output").GetProperty("dims").GetInt32());
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Refusals_made_by_the_server_itself_carry_problem_details()
    {
        await using var api = serving.CreateApi();
        api.UseKestrel(0);
        api.StartServer();
        using var client = api.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", serving.ApiKey);

        using var hugeKey = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = Json("""{"pipeline":"image.embed"}""") };
        hugeKey.Headers.TryAddWithoutValidation("Idempotency-Key", new string('k', 60_000));
        await Problems.AssertAsync(await client.SendAsync(hugeKey), HttpStatusCode.RequestHeaderFieldsTooLarge, "request_too_large");

        var longTarget = await client.GetAsync("/v1/jobs?status=" + new string('q', 20_000));
        await Problems.AssertAsync(longTarget, HttpStatusCode.RequestUriTooLong, "request_too_large");
    }

    /// <summary>A stream whose length is unknown, so the request goes chunked.</summary>
    private sealed class UnknownLengthStream(byte[] data) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(Math.Min(count, 64 * 1024), data.Length - _position);
            Array.Copy(data, _position, buffer, offset, n);
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
