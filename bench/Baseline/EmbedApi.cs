using Async.Serving.Jobs;
using Async.Serving.Worker.Inference;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Async.Serving.Baseline;

/// <summary>The answer of <c>POST /v1/embed</c>: the same fields as an <c>image.embed</c> job's output.</summary>
internal sealed record EmbedResponse(float[] Embedding, int Dims);

internal static class EmbedApi
{
    /// <summary>Largest image body read, as the API's default image limit.</summary>
    private const int MaxImageBytes = 20 * 1024 * 1024;

    public static WebApplicationBuilder AddEmbeddingModel(this WebApplicationBuilder builder)
    {
        // Loopback unless told otherwise (ASPNETCORE_URLS or --urls), like every service of the project.
        if (string.IsNullOrEmpty(builder.Configuration["urls"]))
        {
            builder.WebHost.UseUrls("http://127.0.0.1:5090");
        }

        builder.Services.AddOptionsWithValidateOnStart<BaselineOptions>().BindConfiguration(BaselineOptions.Section).ValidateDataAnnotations();
        builder.Services.AddOptionsWithValidateOnStart<WorkerOptions>().BindConfiguration(WorkerOptions.Section).ValidateDataAnnotations();
        builder.Services.AddSingleton<EmbeddingModel>();
        builder.Services.AddProblemDetails();
        return builder;
    }

    public static WebApplication MapEmbedApi(this WebApplication app)
    {
        // Loaded before the first request, so the first request pays no model load.
        _ = app.Services.GetRequiredService<EmbeddingModel>();
        app.MapGet("/healthz", () => TypedResults.Ok("ok"));
        app.MapPost("/v1/embed", EmbedAsync);
        return app;
    }

    /// <summary>The request body is the image (JPEG, PNG, WebP, GIF or BMP); the model runs before the answer is written.</summary>
    private static async Task<Results<Ok<EmbedResponse>, ProblemHttpResult>> EmbedAsync(HttpRequest request, EmbeddingModel model, CancellationToken cancellationToken)
    {
        if (request.ContentLength > MaxImageBytes)
        {
            return Problem(StatusCodes.Status413PayloadTooLarge, JobErrorCodes.InputTooLarge, $"The image is larger than {MaxImageBytes} bytes.");
        }

        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body, cancellationToken).ConfigureAwait(false);
        if (body.Length == 0)
        {
            return Problem(StatusCodes.Status400BadRequest, JobErrorCodes.InputInvalid, "The request body is empty: send the image as the body.");
        }

        try
        {
            var embedding = model.Embed(body.GetBuffer().AsSpan(0, (int)body.Length));
            return TypedResults.Ok(new EmbedResponse(embedding, embedding.Length));
        }
        catch (JobFailureException ex)
        {
            return Problem(ex.Code == JobErrorCodes.InputTooLarge ? StatusCodes.Status413PayloadTooLarge : StatusCodes.Status400BadRequest, ex.Code, ex.Message);
        }
    }

    private static ProblemHttpResult Problem(int status, string code, string detail) =>
        TypedResults.Problem(detail: detail, statusCode: status, extensions: new Dictionary<string, object?> { ["code"] = code });
}
