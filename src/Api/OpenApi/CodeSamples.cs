using System.Text.Json.Nodes;

namespace Async.Serving.Api.OpenApi;

/// <summary>
/// <c>x-codeSamples</c> of the main operations: curl, the .NET client library (src/Client) and the
/// command-line tool (src/Cli), as docs/clients.md shows them.
/// </summary>
internal static class CodeSamples
{
    private static readonly Dictionary<string, (string Curl, string CSharp, string Cli)> Samples = new(StringComparer.Ordinal)
    {
        ["SubmitJob"] = (
            """
            curl -H "Authorization: Bearer $SERVING_API_KEY" "$SERVING_URL/v1/jobs" \
              -F file=@photo.jpg -F 'request={"pipeline":"image.ocr","model":"ppocr"}'
            """,
            """
            using var client = ServingClient.Create(new ServingClientOptions { BaseAddress = new Uri(url), ApiKey = apiKey });
            var job = await client.SubmitAsync(new SubmitRequest
            {
                Pipeline = "image.ocr",
                Model = "ppocr",
                Input = JobInput.FromFile("photo.jpg"),
            });
            """,
            "serving submit photos/ --pipeline image.ocr --model ppocr -j 8"),
        ["GetJob"] = (
            """curl -H "Authorization: Bearer $SERVING_API_KEY" "$SERVING_URL/v1/jobs/$JOB_ID?wait=30" """,
            """
            var job = await client.WaitAsync(jobId);
            if (job.Output is ImageOcrOutput ocr) { foreach (var line in ocr.Lines) Console.WriteLine(line.Text); }
            """,
            "serving wait $JOB_ID"),
        ["ListJobs"] = (
            """curl -H "Authorization: Bearer $SERVING_API_KEY" "$SERVING_URL/v1/jobs?status=failed&limit=50" """,
            """await foreach (var job in client.ListAllAsync(new JobQuery(Status: "failed"))) Console.WriteLine(job.Id);""",
            "serving jobs --status failed --limit 50"),
        ["JobEvents"] = (
            """curl -N -H "Authorization: Bearer $SERVING_API_KEY" "$SERVING_URL/v1/jobs/$JOB_ID/events" """,
            """await foreach (var e in client.EventsAsync(jobId)) Console.WriteLine($"{e.Type} {e.Job.Progress:P0}");""",
            "serving watch $JOB_ID"),
        ["CancelJob"] = (
            """curl -X POST -H "Authorization: Bearer $SERVING_API_KEY" "$SERVING_URL/v1/jobs/$JOB_ID/cancel" """,
            """var job = await client.CancelAsync(jobId);""",
            "serving cancel $JOB_ID"),
        ["ListModels"] = (
            """curl -H "Authorization: Bearer $SERVING_API_KEY" "$SERVING_URL/v1/models" """,
            """var models = await client.ListModelsAsync();""",
            "serving models"),
        ["SetModelRouting"] = (
            """
            curl -X PUT -H "Authorization: Bearer $SERVING_API_KEY" -H 'Content-Type: application/json' \
              "$SERVING_URL/v1/models/resnet18/routing" -d '{"weights":{"1":90,"2":10}}'
            """,
            """var routing = await client.SetRoutingAsync("resnet18", new Dictionary<string, int> { ["1"] = 90, ["2"] = 10 });""",
            "serving routing set resnet18 1=90 2=10"),
        ["GetModelRouting"] = (
            """curl -H "Authorization: Bearer $SERVING_API_KEY" "$SERVING_URL/v1/models/resnet18/routing" """,
            """var routing = await client.GetRoutingAsync("resnet18");""",
            "serving routing show resnet18"),
        ["GetUsage"] = (
            """curl -H "Authorization: Bearer $SERVING_API_KEY" "$SERVING_URL/v1/usage?from=2026-11-01T00:00:00Z" """,
            """var usage = await client.GetUsageAsync(from: DateTimeOffset.UtcNow.AddDays(-30));""",
            "serving usage --from 2026-11-01"),
    };

    public static JsonArray? For(string operationId) =>
        Samples.TryGetValue(operationId, out var s)
            ? [Sample("Shell", "curl", s.Curl), Sample("C#", ".NET client", s.CSharp), Sample("Shell", "CLI", s.Cli)]
            : null;

    private static JsonObject Sample(string lang, string label, string source) =>
        new() { ["lang"] = lang, ["label"] = label, ["source"] = source.Trim() };
}
