using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.OpenApi;

namespace Async.Serving.Api.OpenApi;

/// <summary>
/// Per operation: a readable description on each problem response, the submit's two request bodies
/// (JSON, and multipart with its <c>file</c> and <c>request</c> parts), the event stream's item type,
/// and code samples (curl, the .NET client, the CLI) that the reference at <c>/docs</c> shows.
/// </summary>
internal sealed class ServingOperationTransformer : IOpenApiOperationTransformer
{
    public async Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        foreach (var (status, response) in operation.Responses ?? [])
        {
            if (response is OpenApiResponse r && response.Content?.ContainsKey("application/problem+json") == true
                && int.TryParse(status, out var code))
            {
                r.Description = $"{ReasonPhrases.GetReasonPhrase(code)}: a problem (see `code`).";
            }
        }

        switch (operation.OperationId)
        {
            case "SubmitJob":
                await SubmitBodyAsync(operation, context, cancellationToken).ConfigureAwait(false);
                break;
            case "JobEvents":
                await EventStreamAsync(operation, context, cancellationToken).ConfigureAwait(false);
                break;
            case "CreateBatch":
                await BatchBodyAsync(operation, context, cancellationToken).ConfigureAwait(false);
                break;
        }

        if (operation.OperationId is { } id && CodeSamples.For(id) is { } samples)
        {
            operation.Extensions ??= new Dictionary<string, IOpenApiExtension>();
            operation.Extensions["x-codeSamples"] = new JsonNodeExtension(samples);
        }
    }

    private static async Task SubmitBodyAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var request = await context.GetOrCreateSchemaAsync(typeof(Jobs.SubmitRequest), null, cancellationToken).ConfigureAwait(false);
        var requestRef = Component(context, "SubmitRequest", request);
        var multipart = new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Description = "The input as a file part, the rest of the request as a JSON part named `request` (without `input`).",
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["file"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.String,
                    Format = "binary",
                    Description = "The image or video; its bytes decide the media type (a declared type must agree).",
                },
                ["request"] = requestRef,
            },
            Required = new HashSet<string> { "file", "request" },
        };
        operation.RequestBody = new OpenApiRequestBody
        {
            Required = true,
            Description = "JSON with input.url or input.base64, or multipart/form-data with the file (the better way for large inputs).",
            Content = new Dictionary<string, OpenApiMediaType>
            {
                ["application/json"] = new() { Schema = requestRef },
                ["multipart/form-data"] = new()
                {
                    Schema = multipart,
                    Encoding = new Dictionary<string, OpenApiEncoding> { ["request"] = new() { ContentType = "application/json" } },
                },
            },
        };
    }

    private static async Task BatchBodyAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var request = await context.GetOrCreateSchemaAsync(typeof(Batches.BatchRequest), null, cancellationToken).ConfigureAwait(false);
        var file = new OpenApiSchema
        {
            Type = JsonSchemaType.String,
            Format = "binary",
            Description = "JSONL: one job per line, a JSON object with `custom_id` (unique in the batch, 1 to 128 characters) and the fields of a job submit "
                + "(`pipeline`, `model`, `input` with `url` or `base64`, `params`, `ttl_seconds`, `timeout_seconds`, `metadata`). Blank lines are skipped.",
        };
        operation.RequestBody = new OpenApiRequestBody
        {
            Required = true,
            Description = "The JSONL file as the body (the batch webhook then in `?webhook_url=`), or multipart/form-data with a `request` part "
                + "(webhook and metadata) before the `file` part.",
            Content = new Dictionary<string, OpenApiMediaType>
            {
                ["application/jsonl"] = new() { Schema = file },
                ["application/x-ndjson"] = new() { Schema = file },
                ["multipart/form-data"] = new()
                {
                    Schema = new OpenApiSchema
                    {
                        Type = JsonSchemaType.Object,
                        Properties = new Dictionary<string, IOpenApiSchema> { ["request"] = Component(context, "BatchRequest", request), ["file"] = file },
                        Required = new HashSet<string> { "file" },
                    },
                    Encoding = new Dictionary<string, OpenApiEncoding> { ["request"] = new() { ContentType = "application/json" } },
                },
            },
        };
    }

    /// <summary>A reference to the component <paramref name="id"/>, added from <paramref name="schema"/> when the document lacks it.</summary>
    private static OpenApiSchemaReference Component(OpenApiOperationTransformerContext context, string id, OpenApiSchema schema)
    {
        var document = context.Document!;
        document.AddComponent(id, schema);
        return new OpenApiSchemaReference(id, document);
    }

    private static async Task EventStreamAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        if (operation.Responses?.TryGetValue("200", out var ok) != true || ok is not OpenApiResponse response)
        {
            return;
        }

        var job = await context.GetOrCreateSchemaAsync(typeof(Jobs.JobResource), null, cancellationToken).ConfigureAwait(false);
        response.Description = "A server-sent event stream: `event:` status, progress or completed; `id:` to resume with Last-Event-ID; "
            + "`data:` the job as JSON (this schema).";
        response.Content = new Dictionary<string, OpenApiMediaType>
        {
            ["text/event-stream"] = new() { Schema = Component(context, "JobResource", job) },
        };
    }
}
