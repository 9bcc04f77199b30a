using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Async.Serving.Client;
using Async.Serving.Contracts.Outputs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using StandardWebhooks.Diagnostics;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The examples of docs/clients.md ("Library"), as written there, run against an API host on a real
/// loopback port (Kestrel) and the fixture's worker; the last test checks that every C# block of
/// that section is in this file, so the docs cannot drift from code that runs.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed partial class ClientDocsExamples(ServingFixture serving)
{
    private static readonly TimeSpan Wait = ServingFixture.JobWait;

    /// <summary>An API host listening on 127.0.0.1 and a free port, and its base URL.</summary>
    private (WebApplicationFactory<Program> Api, string BaseUrl) StartApi(IDictionary<string, string?>? overrides = null)
    {
        var api = serving.CreateApi(overrides);
        return (api, ServingFixture.StartKestrel(api) + "/");
    }

    [Fact]
    public async Task Make_a_client()
    {
        var (api, baseUrl) = StartApi();
        await using var _ = api;
        var apiKey = serving.ApiKey;
        var services = new ServiceCollection();

        services.AddServingClient(o =>
        {
            o.BaseAddress = new Uri(baseUrl);
            o.ApiKey = apiKey;
        });

        await using (var provider = services.BuildServiceProvider())
        {
            var registered = provider.GetRequiredService<ServingClient>();
            Assert.Contains(await registered.ListModelsAsync(), m => m.Name == "resnet18");
        }

        using var client = ServingClient.Create(new ServingClientOptions { BaseAddress = new Uri(baseUrl), ApiKey = apiKey });
        Assert.Contains(await client.ListModelsAsync(), m => m.Name == "resnet18");
    }

    [Fact]
    public async Task Submit_and_wait()
    {
        var (api, baseUrl) = StartApi();
        await using var _ = api;
        using var client = ServingClient.Create(new ServingClientOptions { BaseAddress = new Uri(baseUrl), ApiKey = serving.ApiKey });
        using var cts = new CancellationTokenSource(Wait);
        var cancellationToken = cts.Token;
        var path = Path.Combine(Directory.CreateTempSubdirectory("docs-").FullName, "photo.jpg");
        await File.WriteAllBytesAsync(path, TestImages.Scene(95, 320, 240), cancellationToken);

        var job = await client.RunAsync(new SubmitRequest
        {
            Pipeline = "image.embed",
            Model = "resnet18",
            Input = JobInput.FromFile(path),
        }, timeout: TimeSpan.FromMinutes(2), cancellationToken);

        if (job.Output is ImageEmbedOutput embedding)
        {
            Console.WriteLine($"{embedding.Dims} values, the first {embedding.Embedding[0]}");
        }

        Assert.Equal(JobStatuses.Succeeded, job.Status);
        Assert.Equal(512, Assert.IsType<ImageEmbedOutput>(job.Output).Dims);
    }

    [Fact]
    public async Task Stream_progress()
    {
        var (api, baseUrl) = StartApi();
        await using var _ = api;
        using var client = ServingClient.Create(new ServingClientOptions { BaseAddress = new Uri(baseUrl), ApiKey = serving.ApiKey });
        using var cts = new CancellationTokenSource(Wait);
        var cancellationToken = cts.Token;
        var videoPath = Path.Combine(Directory.CreateTempSubdirectory("docs-").FullName, "clip.mp4");
        await File.WriteAllBytesAsync(videoPath, await TestVideos.ShotsAsync([(96, 2.0), (97, 2.0)], width: 160, height: 120), cancellationToken);

        var ticket = await client.SubmitAsync(new SubmitRequest
        {
            Pipeline = "video.analyze",
            Model = "video",
            Input = JobInput.FromFile(videoPath),
            Params = JsonSerializer.SerializeToElement(new { sample_fps = 2 }),
        }, cancellationToken);

        string? lastEventId = null;
        await foreach (var e in client.EventsAsync(ticket.Id, lastEventId, cancellationToken))
        {
            lastEventId = e.Id; // EventsAsync(ticket.Id, lastEventId) resumes after this event
            Console.WriteLine($"{e.Type}: {e.Job.Status} {e.Job.Progress:P0}");
        }

        // The loop ends at the completion: the job has ended, and nothing comes after its last event.
        Assert.NotNull(lastEventId);
        var job = await client.GetAsync(ticket.Id, cancellationToken);
        Assert.Equal(JobStatuses.Succeeded, job.Status);
        Assert.Equal(2, Assert.IsType<VideoAnalyzeOutput>(job.Output).Shots.Count);
        await foreach (var e in client.EventsAsync(ticket.Id, lastEventId, cancellationToken))
        {
            Assert.Fail($"nothing comes after the completion, yet {e.Type} came");
        }
    }

    [Fact]
    public async Task Errors()
    {
        var (api, baseUrl) = StartApi();
        await using var _ = api;
        using var client = ServingClient.Create(new ServingClientOptions { BaseAddress = new Uri(baseUrl), ApiKey = serving.ApiKey });
        var cancellationToken = CancellationToken.None;
        var missing = await Assert.ThrowsAsync<ServingApiException>(() => client.GetAsync("no-such-job"));
        Assert.Equal("not_found", missing.Code); // so the example's filter holds and it ends quietly

        try
        {
            await client.GetAsync("no-such-job", cancellationToken);
        }
        catch (ServingApiException ex) when (ex.Code == "not_found")
        {
            Console.WriteLine($"{ex.Status} {ex.Code}: {ex.Detail}");
        }
    }

    [Fact]
    public async Task Cancel_list_models_usage()
    {
        // A model no worker serves: the job stays queued, so the cancel finds it unfinished.
        using var privateModels = new PrivateModels();
        var (api, baseUrl) = StartApi(new Dictionary<string, string?>
        {
            ["Serving:Models:Path"] = privateModels.Path,
            ["Serving:Auth:DevelopmentTenant"] = "docs-" + Guid.NewGuid().ToString("N")[..8],
        });
        await using var _ = api;
        using var client = ServingClient.Create(new ServingClientOptions { BaseAddress = new Uri(baseUrl), ApiKey = serving.ApiKey });
        using var cts = new CancellationTokenSource(Wait);
        var cancellationToken = cts.Token;
        var ticket = await client.SubmitAsync(new SubmitRequest
        {
            Pipeline = "image.embed",
            Model = privateModels.Name,
            Input = JobInput.FromBytes(TestImages.Scene(98, 96, 96), "a.jpg"),
        }, cancellationToken);

        var cancelled = await client.CancelAsync(ticket.Id, cancellationToken); // a finished job: ServingApiException "conflict"
        await foreach (var failed in client.ListAllAsync(new JobQuery(Status: JobStatuses.Failed), cancellationToken))
        {
            Console.WriteLine($"{failed.Id} {failed.Error?.Code}");
        }

        var models = await client.ListModelsAsync(cancellationToken);
        var usage = await client.GetUsageAsync(DateTimeOffset.UtcNow.AddDays(-7), cancellationToken: cancellationToken);

        Assert.Equal(JobStatuses.Cancelled, cancelled.Status);
        Assert.Equal([ticket.Id], (await client.ListAsync(new JobQuery(Status: JobStatuses.Cancelled), cancellationToken)).Data.Select(j => j.Id));
        Assert.Single(models, m => m.Name == privateModels.Name);
        Assert.True(usage.To > usage.From);
    }

    [Fact]
    public async Task Verify_a_webhook()
    {
        var (api, baseUrl) = StartApi(new Dictionary<string, string?>
        {
            ["Serving:Auth:DevelopmentTenant"] = "docs-hooks-" + Guid.NewGuid().ToString("N")[..8],
            ["Serving:Security:AllowPrivateNetworks"] = "true",
            ["Serving:Hangfire:RunServer"] = "true",
            ["Serving:Webhooks:RunRelay"] = "true",
        });
        await using var _ = api;
        using var client = ServingClient.Create(new ServingClientOptions { BaseAddress = new Uri(baseUrl), ApiKey = serving.ApiKey });
        var secret = await client.GetWebhookSecretAsync();

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Testing" });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        await using var app = builder.Build();
        app.Urls.Add("http://127.0.0.1:0");

        app.MapPost("/hooks/serving", async (HttpRequest request) =>
        {
            using var reader = new StreamReader(request.Body);
            var body = await reader.ReadToEndAsync();
            WebhookEvent hook;
            try
            {
                hook = ServingWebhooks.Verify(secret, request.Headers, body);
            }
            catch (WebhookVerificationException)
            {
                return Results.Unauthorized();
            }

            if (hook.Data is { Status: JobStatuses.Succeeded } finished)
            {
                Console.WriteLine($"{hook.Type}: job {finished.Id} succeeded");
            }

            return Results.Ok();
        });

        await app.StartAsync();
        var receiver = new Uri(new Uri(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single()), "/hooks/serving");
        var job = await client.RunAsync(new SubmitRequest
        {
            Pipeline = "image.embed",
            Model = "resnet18",
            Input = JobInput.FromBytes(TestImages.Scene(99, 96, 96), "a.jpg"),
            Webhook = new WebhookSubscription(receiver),
        }, Wait);
        Assert.Equal(JobStatuses.Succeeded, job.Status);

        // The receiver's answer is on record: 200 once verified (401 would be a failed delivery).
        var deadline = DateTime.UtcNow + Wait;
        IReadOnlyList<Delivery> deliveries;
        while ((deliveries = (await client.ListDeliveriesAsync(new DeliveryQuery(JobId: job.Id))).Data).Count == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Equal("delivered", Assert.Single(deliveries).Status);
        using var http = new HttpClient();
        using var unsigned = await http.PostAsync(receiver, new StringContent("""{"type":"job.completed"}"""));
        Assert.Equal(HttpStatusCode.Unauthorized, unsigned.StatusCode);
        await app.StopAsync();
    }

    [Fact]
    public void Every_csharp_block_of_the_library_docs_runs_here()
    {
        var docs = File.ReadAllText(Path.Combine(ServingFixture.RepoRoot, "docs", "clients.md"));
        var library = docs[docs.IndexOf("## Library", StringComparison.Ordinal)..docs.IndexOf("## Command line", StringComparison.Ordinal)];
        var blocks = CsharpBlock().Matches(library).Select(m => Normalise(m.Groups[1].Value)).ToList();
        var source = Normalise(File.ReadAllText(Path.Combine(ServingFixture.RepoRoot, "tests", "IntegrationTests", "ClientDocsExamples.cs")));

        Assert.True(blocks.Count >= 6, $"{blocks.Count} C# blocks in the Library section");
        Assert.All(blocks, block => Assert.True(source.Contains(block, StringComparison.Ordinal), $"not in ClientDocsExamples.cs:\n{block}"));
    }

    /// <summary>Lines trimmed, blank lines dropped: indentation differs between the docs and a method body.</summary>
    private static string Normalise(string code) =>
        string.Join('\n', code.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));

    [GeneratedRegex(@"```csharp\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CsharpBlock();
}
