namespace Async.Serving.Api.Reference;

/// <summary>
/// <c>/docs</c>: a self-contained page (no external scripts or fonts) that renders the OpenAPI
/// document at <c>/openapi/v1.json</c> as a list of operations.
/// </summary>
public static class ApiReference
{
    private static readonly Lazy<byte[]> Page = new(() =>
    {
        using var stream = typeof(ApiReference).Assembly.GetManifestResourceStream("Async.Serving.Api.Reference.reference.html")
            ?? throw new InvalidOperationException("The API reference page is not embedded.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });

    public static void MapApiReference(this IEndpointRouteBuilder app) =>
        app.MapGet("/docs", () => TypedResults.Bytes(Page.Value, "text/html; charset=utf-8"))
            .ExcludeFromDescription();
}
