using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Async.Serving.Api.Ledger;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The PostgreSQL job ledger, <c>GET /v1/usage</c> and the dashboard's inference pages. Jobs run on
/// a private model with a worker of this build, so that no other worker on the same broker (another
/// checkout's, say) takes them.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class LedgerTests(ServingFixture serving) : IAsyncLifetime
{
    private static readonly TimeSpan LedgerWait = TimeSpan.FromSeconds(20);

    private readonly PrivateWorker _worker = new();

    private PrivateModels Models => _worker.Models;

    public Task InitializeAsync() => _worker.StartAsync();

    public async Task DisposeAsync() => await _worker.DisposeAsync();

    private string ModelId => Models.Name + "@1";

    private (WebApplicationFactory<Program> Api, string Key, string Tenant) NewTenant()
    {
        var key = "sk_test_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant();
        var tenant = "ledger-" + Guid.NewGuid().ToString("N")[..8];
        var api = serving.CreateApi(new Dictionary<string, string?>
        {
            ["Serving:Auth:DevelopmentKey"] = key,
            ["Serving:Auth:DevelopmentTenant"] = tenant,
            ["Serving:Models:Path"] = Models.Path,
        });
        return (api, key, tenant);
    }

    private async Task<JsonElement> RunAsync(HttpClient client, byte[] image)
    {
        var response = await client.PostAsJsonAsync("/v1/jobs?wait=30", new
        {
            pipeline = "image.embed",
            model = Models.Name,
            input = new { base64 = Convert.ToBase64String(image) },
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var job = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        return job;
    }

    /// <summary>Polls the ledger until the job's row has <paramref name="status"/>, at most <see cref="LedgerWait"/>.</summary>
    internal static async Task<LedgerRow> WaitForRowAsync(WebApplicationFactory<Program> api, string id, string status)
    {
        var ledger = api.Services.GetRequiredService<LedgerStore>();
        var deadline = DateTime.UtcNow + LedgerWait;
        while (true)
        {
            var found = await ledger.GetAsync(id, CancellationToken.None);
            if (found is { Row.Status: var s } && s == status)
            {
                return found.Value.Row;
            }

            Assert.True(DateTime.UtcNow < deadline, $"ledger row of {id} not {status} after {LedgerWait.TotalSeconds} s (now {found?.Row.Status ?? "absent"})");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Finished_jobs_get_a_ledger_row_and_count_in_the_tenants_usage_only()
    {
        var (api, key, tenant) = NewTenant();
        await using var _ = api;
        using var client = serving.Client(api, key);
        var images = new[] { TestImages.Scene(501, 320, 240), TestImages.Scene(502, 256, 256) };
        var jobs = new List<JsonElement>();
        foreach (var image in images)
        {
            jobs.Add(await RunAsync(client, image));
        }

        for (var i = 0; i < jobs.Count; i++)
        {
            var row = await WaitForRowAsync(api, jobs[i].GetProperty("id").GetString()!, "succeeded");
            Assert.Equal(tenant, row.TenantId);
            Assert.Equal("image.embed", row.Pipeline);
            Assert.Equal(ModelId, row.Model);
            Assert.Equal(images[i].Length, row.InputBytes);
            Assert.Equal(jobs[i].GetProperty("execution_ms").GetInt64(), row.ComputeMs);
            Assert.Equal(1, row.Attempts);
            Assert.NotNull(row.StartedAt);
            Assert.NotNull(row.CompletedAt);
        }

        var usage = await client.GetFromJsonAsync<JsonElement>("/v1/usage");
        var line = Assert.Single(usage.GetProperty("data").EnumerateArray());
        Assert.Equal("image.embed", line.GetProperty("pipeline").GetString());
        Assert.Equal(ModelId, line.GetProperty("model").GetString());
        Assert.Equal(2, line.GetProperty("jobs").GetInt64());
        Assert.Equal(2, line.GetProperty("succeeded").GetInt64());
        Assert.Equal(0, line.GetProperty("failed").GetInt64());
        Assert.Equal(jobs.Sum(j => j.GetProperty("execution_ms").GetInt64()), line.GetProperty("compute_ms").GetInt64());
        Assert.Equal(images.Sum(i => (long)i.Length), line.GetProperty("input_bytes").GetInt64());
        Assert.True(usage.GetProperty("to").GetDateTimeOffset() - usage.GetProperty("from").GetDateTimeOffset() == TimeSpan.FromDays(30));

        // A period that ends before the jobs were created holds none of them.
        var before = jobs[0].GetProperty("created_at").GetDateTimeOffset().AddSeconds(-1).ToString("O");
        var empty = await client.GetFromJsonAsync<JsonElement>($"/v1/usage?to={Uri.EscapeDataString(before)}");
        Assert.Empty(empty.GetProperty("data").EnumerateArray());

        // Another tenant sees nothing of these jobs.
        var (other, otherKey, _) = NewTenant();
        await using var __ = other;
        using var otherClient = serving.Client(other, otherKey);
        var otherUsage = await otherClient.GetFromJsonAsync<JsonElement>("/v1/usage");
        Assert.Empty(otherUsage.GetProperty("data").EnumerateArray());
    }

    [Theory]
    [InlineData("from=yesterday")]
    [InlineData("to=2026-13-01T00:00:00Z")]
    [InlineData("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z")]
    [InlineData("from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z")]
    [InlineData("from=2025-01-01T00:00:00Z&to=2026-02-01T00:00:00Z")]
    public async Task A_bad_period_is_400_input_invalid(string query)
    {
        using var client = serving.Client();
        var response = await client.GetAsync($"/v1/usage?{query}");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("input_invalid", problem.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Usage_needs_an_api_key()
    {
        using var client = serving.Api.CreateClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/v1/usage")).StatusCode);
    }

    [Fact]
    public async Task The_dashboard_inference_pages_list_and_show_jobs_to_the_admin_only()
    {
        var (api, key, tenant) = NewTenant();
        await using var _ = api;
        using var client = serving.Client(api, key);
        var job = await RunAsync(client, TestImages.Scene(503, 200, 200));
        var id = job.GetProperty("id").GetString()!;
        await WaitForRowAsync(api, id, "succeeded");

        using var anonymous = api.CreateClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/hangfire/inference")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync($"/hangfire/inference/job?id={id}")).StatusCode);

        using var admin = api.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue(
            "Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"admin:{serving.DashboardPassword}")));
        var list = await admin.GetAsync($"/hangfire/inference?tenant={Uri.EscapeDataString(tenant)}&status=succeeded&pipeline=image.embed&model={ModelId}");
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        Assert.Contains(id, await list.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var otherTenant = await admin.GetStringAsync("/hangfire/inference?tenant=nobody-" + Guid.NewGuid().ToString("N"));
        Assert.DoesNotContain(id, otherTenant, StringComparison.Ordinal);

        var detail = await admin.GetAsync($"/hangfire/inference/job?id={id}");
        Assert.Equal(HttpStatusCode.OK, detail.StatusCode);
        var html = await detail.Content.ReadAsStringAsync();
        Assert.Contains(id, html, StringComparison.Ordinal);
        Assert.Contains("Timeline", html, StringComparison.Ordinal);
        Assert.Contains("running", html, StringComparison.Ordinal);
        // The job's trace (docs/observability.md) is named on its page, as the job resource names it.
        var traceId = job.GetProperty("trace_id").GetString();
        Assert.Matches("^[0-9a-f]{32}$", traceId);
        Assert.Contains($"<code>{traceId}</code>", html, StringComparison.Ordinal);

        // Whatever comes in the query string is written encoded.
        var hostile = await admin.GetStringAsync("/hangfire/inference?model=" + Uri.EscapeDataString("<script>alert(1)</script>"));
        Assert.DoesNotContain("<script>alert(1)</script>", hostile, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;", hostile, StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync("/hangfire/inference/job?id=missing")).StatusCode);
    }

    [Fact]
    public async Task The_dashboard_job_list_pages_older_and_newer_with_its_filters_and_shows_queue_and_execution_times()
    {
        // Five jobs of a fresh tenant, two created at the same instant (the job id breaks the tie).
        var tenant = "ledger-pages-" + Guid.NewGuid().ToString("N")[..8];
        var at = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var created = new[] { at, at.AddSeconds(1), at.AddSeconds(2), at.AddSeconds(2), at.AddSeconds(3) };
        var jobs = created.Select((c, i) => new Async.Serving.Jobs.JobRecord
        {
            Id = $"job-{tenant}-{i}",
            TenantId = tenant,
            Status = "succeeded",
            Pipeline = "image.embed",
            Model = ModelId,
            CreatedAt = c,
            StartedAt = c.AddMilliseconds(1500),
            CompletedAt = c.AddMilliseconds(1750),
            Attempts = 1,
        }).ToList();
        await serving.Api.Services.GetRequiredService<LedgerStore>().WriteAsync(new LedgerBatch([], [], jobs, []), CancellationToken.None);
        // Newest first: 4, then 3 and 2 (same time, higher id first), 1, 0.
        string[] expected = [jobs[4].Id, jobs[3].Id, jobs[2].Id, jobs[1].Id, jobs[0].Id];

        using var admin = serving.Api.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue(
            "Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"admin:{serving.DashboardPassword}")));
        string[] Shown(string html) => [.. expected.Where(id => html.Contains($">{id}<", StringComparison.Ordinal))];
        static string? Link(string html, string text)
        {
            var match = System.Text.RegularExpressions.Regex.Match(html, $"<a href=\"([^\"]+)\">{System.Text.RegularExpressions.Regex.Escape(text)}</a>");
            return match.Success ? WebUtility.HtmlDecode(match.Groups[1].Value) : null;
        }

        var first = await admin.GetStringAsync($"/hangfire/inference?tenant={tenant}&status=succeeded&limit=2");
        Assert.Equal(expected[..2], Shown(first));
        Assert.Null(Link(first, "← Newer"));
        Assert.Contains("1,500 ms", first, StringComparison.Ordinal); // queue time: created to started
        Assert.Contains("250 ms", first, StringComparison.Ordinal); // execution time: started to completed
        var olderLink = Link(first, "Older →")!;
        Assert.Contains($"tenant={tenant}", olderLink, StringComparison.Ordinal);
        Assert.Contains("status=succeeded", olderLink, StringComparison.Ordinal);

        var second = await admin.GetStringAsync(olderLink);
        Assert.Equal(expected[2..4], Shown(second));
        var third = await admin.GetStringAsync(Link(second, "Older →")!);
        Assert.Equal(expected[4..], Shown(third));
        Assert.Null(Link(third, "Older →"));

        // Back: the page before the last is the second again, and the one before it the first.
        var back = await admin.GetStringAsync(Link(third, "← Newer")!);
        Assert.Equal(expected[2..4], Shown(back));
        var front = await admin.GetStringAsync(Link(back, "← Newer")!);
        Assert.Equal(expected[..2], Shown(front));
        Assert.Null(Link(front, "← Newer"));

        // A cursor that the page did not write is ignored: the first page.
        Assert.Equal(expected[..2], Shown(await admin.GetStringAsync($"/hangfire/inference?tenant={tenant}&limit=2&before=junk")));
    }

    [Fact]
    public async Task A_job_deleted_because_its_publish_failed_leaves_no_row()
    {
        var store = serving.Api.Services.GetRequiredService<Async.Serving.Jobs.RedisJobStore>();
        var job = new Async.Serving.Jobs.JobRecord
        {
            Id = Async.Serving.Jobs.RedisJobStore.NewJobId(),
            TenantId = serving.Tenant,
            Status = JobStatuses.Queued,
            Pipeline = "image.embed",
            Model = ModelId,
            CreatedAt = DateTimeOffset.UtcNow,
        };
        await store.CreateAsync(job, new byte[] { 1 });
        await WaitForRowAsync(serving.Api, job.Id, "queued");
        await store.DeleteAsync(job.Id, job.TenantId);

        // A later job written after the deletion shows the writer got past it.
        var later = job with { Id = Async.Serving.Jobs.RedisJobStore.NewJobId() };
        await store.CreateAsync(later, new byte[] { 1 });
        await WaitForRowAsync(serving.Api, later.Id, "queued");
        Assert.Null(await serving.Api.Services.GetRequiredService<LedgerStore>().GetAsync(job.Id, CancellationToken.None));
        await store.DeleteAsync(later.Id, later.TenantId);
    }
}
