using Microsoft.AspNetCore.Mvc;
using Scalar.AspNetCore;

namespace Async.Serving.Api.OpenApi;

/// <summary>
/// The OpenAPI document at <c>/openapi/v1.json</c>, shaped for client generators (bearer security,
/// operation ids, problem responses with their codes, typed outputs), and the interactive reference
/// at <c>/docs</c> (Scalar, served from the package: no script or font from elsewhere).
/// </summary>
public static class OpenApiExtensions
{
    public const string DocumentPath = "/openapi/v1.json";

    public static WebApplicationBuilder AddServingOpenApi(this WebApplicationBuilder builder)
    {
        builder.Services.AddOpenApi(options =>
        {
            options.AddDocumentTransformer<ServingDocumentTransformer>();
            options.AddOperationTransformer<ServingOperationTransformer>();
            options.AddSchemaTransformer<ServingSchemaTransformer>();
        });
        return builder;
    }

    public static void MapServingOpenApi(this WebApplication app)
    {
        app.MapOpenApi(DocumentPath);
        app.MapScalarApiReference("/docs", options => options
            .WithTitle("Async.Serving API")
            .WithOpenApiRoutePattern(DocumentPath)
            .DisableDefaultFonts()
            .AddPreferredSecuritySchemes(ServingDocumentTransformer.SecurityScheme)
            .WithDefaultHttpClient(ScalarTarget.Shell, ScalarClient.Curl))
            .ExcludeFromDescription();
    }

    /// <summary>
    /// Describes problem answers (<c>application/problem+json</c> with the contract's <c>code</c>) for
    /// each status, so generated clients type their errors instead of failing on an unknown status.
    /// </summary>
    public static TBuilder ProducesProblems<TBuilder>(this TBuilder builder, params int[] statuses)
        where TBuilder : IEndpointConventionBuilder
    {
        foreach (var status in statuses)
        {
            builder.ProducesProblem(status);
        }

        return builder;
    }

    /// <summary>Problem answers every authenticated route can give: no or a bad key, the rate limit, a store or the key check unavailable.</summary>
    public static TBuilder ProducesCommonProblems<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.ProducesProblems(StatusCodes.Status401Unauthorized, StatusCodes.Status429TooManyRequests, StatusCodes.Status503ServiceUnavailable);

    internal static readonly Type ProblemType = typeof(ProblemDetails);
}
