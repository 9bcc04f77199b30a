using System.Text.Json.Nodes;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Jobs;
using Async.Serving.Contracts.Outputs;
using Async.Serving.Jobs;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Async.Serving.Api.OpenApi;

/// <summary>
/// What the types alone cannot say: the problem's <c>code</c> values, the enums of status and
/// pipeline, the fields a submit requires (checked by the reader, with its own messages, rather than
/// by the deserializer), free-form objects for params and metadata, and examples.
/// </summary>
internal sealed class ServingSchemaTransformer : IOpenApiSchemaTransformer
{
    private static readonly string[] Priorities = [JobPriorities.Low, JobPriorities.Normal, JobPriorities.High];

    private static readonly string[] Statuses =
        [JobStatuses.Queued, JobStatuses.Running, JobStatuses.Succeeded, JobStatuses.Failed, JobStatuses.Cancelled, JobStatuses.Expired];

    public Task TransformAsync(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken cancellationToken)
    {
        if (context.JsonPropertyInfo is not null)
        {
            return Task.CompletedTask; // properties are shaped from their declaring type below
        }

        var type = context.JsonTypeInfo.Type;
        if (type == typeof(ProblemDetails))
        {
            Problem(schema);
        }
        else if (type == typeof(JobOutput))
        {
            schema.Description = "The output of a succeeded job; `pipeline` names its shape.";
        }
        else if (type.IsSubclassOf(typeof(JobOutput)))
        {
            schema.Type = JsonSchemaType.Object;
            Require(schema, "pipeline");
        }
        else if (type == typeof(JobResource))
        {
            schema.Properties!["status"] = Enum(Statuses, "queued → running → succeeded | failed | cancelled | expired.");
            schema.Properties["pipeline"] = Enum(PipelineNames.All, null);
            Require(schema, "progress", "attempts");
            schema.Properties["metadata"] = FreeObject("The metadata given at submit, returned as it was.", nullable: true);
            schema.Properties["priority"] = Enum(Priorities, "The lane the job waits in: as submitted, else the tenant's default, else normal.");
            schema.Properties["trace_id"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String | JsonSchemaType.Null,
                Pattern = "^[0-9a-f]{32}$",
                Description = "The job's OpenTelemetry trace id: one trace from the submit through the queue, batch, inference and result to each webhook attempt.",
            };
            schema.Properties["cache"] = Enum(["hit", "miss", "off"],
                "The result cache: hit (the output came from the cache, or from an identical job running at the same time; no worker time), miss (computed, then stored), off (opted out, or not cacheable).");
            Require(schema, "cache");
            schema.Examples = [JsonNode.Parse(JobExample)!];
        }
        else if (type == typeof(JobError))
        {
            schema.Properties!["code"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                Description = "Why the job failed: input_invalid, input_missing, input_too_large, inference_failed, timeout, expired, "
                    + "unknown_model, worker_lost, dead_letter, internal_error (more may be added; treat unknown codes as internal_error).",
            };
        }
        else if (type == typeof(SubmitRequest))
        {
            schema.Properties!["pipeline"] = Enum(PipelineNames.All, "The pipeline to run.");
            schema.Properties["model"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                Description = "A model name (its latest version) or name@version; optional: the first model of the pipeline when left out. See GET /v1/models.",
            };
            schema.Properties["params"] = FreeObject("Pipeline parameters, for example {\"sample_fps\": 2} for video.analyze.", nullable: true);
            schema.Properties["priority"] = Enum(Priorities, "Which lane of the model's queue the job waits in: higher lanes are taken first, lower ones still progress "
                + "(docs/priorities.md). Left out: the tenant's default (Serving:Tenants:<tenant>:DefaultPriority), else normal.");
            schema.Properties["metadata"] = FreeObject("Anything to keep with the job (at most 4 KiB), returned as given.", nullable: true);
            schema.Properties["cache"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Boolean | JsonSchemaType.Null,
                Description = "false: the job is neither answered from the result cache nor stored in it (default true). See docs/cache.md.",
            };
            Require(schema, "pipeline");
            schema.Examples = [JsonNode.Parse(SubmitExample)!];
        }
        else if (type == typeof(SubmitWebhook))
        {
            schema.Properties!["url"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "uri", Description = "An https (or, in development, http) URL." };
            schema.Properties["events"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Array | JsonSchemaType.Null,
                Items = Enum(["started", "progress", "completed"], null),
                Description = "Events to deliver; default [\"completed\"].",
            };
            Require(schema, "url");
        }

        return Task.CompletedTask;
    }

    private static void Problem(OpenApiSchema schema)
    {
        schema.Description = "An RFC 9457 problem. Switch on `code` (or on `type`, a stable URI per code).";
        schema.Properties ??= new Dictionary<string, IOpenApiSchema>();
        schema.Properties["type"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "uri", Description = "A stable URI per code." };
        schema.Properties["title"] = new OpenApiSchema { Type = JsonSchemaType.String };
        schema.Properties["status"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32", Description = "The HTTP status." };
        schema.Properties["code"] = Enum(ApiProblems.AllCodes, "The stable machine-readable reason.");
        schema.Properties["errors"] = new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Description = "For input_invalid: the fields at fault and what is wrong with each.",
            AdditionalProperties = new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.String } },
        };
        Require(schema, "type", "title", "status", "code");
    }

    private static OpenApiSchema Enum(IEnumerable<string> values, string? description) => new()
    {
        Type = JsonSchemaType.String,
        Enum = [.. values.Select(v => (JsonNode)JsonValue.Create(v))],
        Description = description,
    };

    private static OpenApiSchema FreeObject(string description, bool nullable) => new()
    {
        Type = nullable ? JsonSchemaType.Object | JsonSchemaType.Null : JsonSchemaType.Object,
        AdditionalProperties = new OpenApiSchema(),
        Description = description,
    };

    private static void Require(OpenApiSchema schema, params string[] names)
    {
        schema.Required ??= new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            schema.Required.Add(name);
        }
    }

    private const string SubmitExample = """
        {"pipeline": "image.embed", "model": "resnet18", "input": {"url": "https://example.com/cat.jpg"},
         "priority": "high", "metadata": {"batch": "2026-12-01"}, "webhook": {"url": "https://example.com/hooks/serving", "events": ["completed"]}}
        """;

    private const string JobExample = """
        {"id": "0193a1f0c2d47e4f9b2a6c8d0e1f2a3b", "status": "succeeded", "pipeline": "image.ocr", "model": "ppocr@4", "priority": "normal",
         "created_at": "2026-12-01T10:00:00Z", "started_at": "2026-12-01T10:00:00.120Z", "completed_at": "2026-12-01T10:00:00.480Z",
         "queue_ms": 120, "execution_ms": 360, "progress": 1, "attempts": 1,
         "output": {"pipeline": "image.ocr", "width": 640, "height": 480,
                    "lines": [{"text": "Hello, world", "confidence": 0.9871, "box": [[12, 20], [210, 20], [210, 52], [12, 52]]}]},
         "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
         "cache": "miss",
         "links": {"self": "/v1/jobs/0193a1f0c2d47e4f9b2a6c8d0e1f2a3b", "events": "/v1/jobs/0193a1f0c2d47e4f9b2a6c8d0e1f2a3b/events",
                   "cancel": "/v1/jobs/0193a1f0c2d47e4f9b2a6c8d0e1f2a3b/cancel"}}
        """;
}
