using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Async.Serving.Api.OpenApi;

/// <summary>
/// Document-wide: title, licence, a server without a trailing slash, the bearer security scheme
/// required by every operation, and a description for each tag.
/// </summary>
internal sealed class ServingDocumentTransformer : IOpenApiDocumentTransformer
{
    public const string SecurityScheme = "bearer";

    private static readonly Dictionary<string, string> Tags = new(StringComparer.Ordinal)
    {
        ["Jobs"] = "Submit a job, read it (poll, long-poll with ?wait=, or server-sent events) and cancel it.",
        ["Batches"] = "Many jobs in one JSONL upload: the batch's progress, cancel, and its results in input order.",
        ["Models"] = "The models served, their versions, batching and live workers.",
        ["Usage"] = "Jobs and compute time per pipeline and model, from the job ledger.",
        ["Webhooks"] = "Signing secret, delivery log, redelivery, re-enabling a disabled URL and test events.",
        ["Keys"] = "The tenant's own API keys (admin scope).",
    };

    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info.Title = "Async.Serving API";
        document.Info.Description =
            "Queue-driven asynchronous inference: submit a job, get a ticket at once, and collect the result by polling, "
            + "long-polling, server-sent events or a signed webhook. Errors are RFC 9457 problems (application/problem+json) "
            + "with a stable `code`.";
        document.Info.License = new OpenApiLicense { Name = "MIT", Identifier = "MIT" };

        foreach (var server in document.Servers ?? [])
        {
            server.Url = server.Url?.TrimEnd('/');
        }

        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[SecurityScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "API key (sk_…)",
            Description = "An API key: `Authorization: Bearer sk_…` (scripts/create-key.sh or POST /v1/keys).",
        };
        document.Security = [Requirement(document)];
        foreach (var operation in document.Paths.Values.SelectMany(p => (IEnumerable<OpenApiOperation>?)p.Operations?.Values ?? []))
        {
            operation.Security = [Requirement(document)];
        }

        // A polymorphic type (JobOutput) comes as anyOf: its shapes are told apart by the discriminator,
        // so exactly one applies.
        foreach (var schema in document.Components.Schemas?.Values.OfType<OpenApiSchema>() ?? [])
        {
            if (schema.Discriminator is not null && schema.AnyOf is { Count: > 0 } shapes)
            {
                schema.OneOf = shapes;
                schema.AnyOf = null;
            }
        }

        // The event stream's framework item type is described as the job it carries instead.
        foreach (var unused in document.Components.Schemas?.Keys.Where(k => k.StartsWith("SseItemOf", StringComparison.Ordinal)).ToList() ?? [])
        {
            document.Components.Schemas!.Remove(unused);
        }

        document.Tags ??= new HashSet<OpenApiTag>();
        foreach (var (name, description) in Tags)
        {
            if (document.Tags.FirstOrDefault(t => t.Name == name) is { } tag)
            {
                tag.Description = description;
            }
            else
            {
                document.Tags.Add(new OpenApiTag { Name = name, Description = description });
            }
        }

        return Task.CompletedTask;
    }

    private static OpenApiSecurityRequirement Requirement(OpenApiDocument document) =>
        new() { [new OpenApiSecuritySchemeReference(SecurityScheme, document)] = [] };
}
