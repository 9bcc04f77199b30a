using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Errors;

/// <summary>Section <c>Serving:RequestLimits</c>: the request line and headers a request may carry.</summary>
public sealed class RequestLimitsOptions
{
    public const string Section = "Serving:RequestLimits";

    /// <summary>All header lines together, in bytes (names, values and line ends); Kestrel's own default is 32 KiB.</summary>
    [Range(1024, 1024 * 1024)]
    public int MaxHeadersTotalBytes { get; set; } = 32 * 1024;

    [Range(1, 10_000)]
    public int MaxHeaderCount { get; set; } = 100;

    /// <summary>The request target (path and query string), in bytes; Kestrel's own default line limit is 8 KiB.</summary>
    [Range(256, 1024 * 1024)]
    public int MaxRequestTargetBytes { get; set; } = 8 * 1024;

    /// <summary>
    /// Kestrel's own limits are set this many times higher, as a backstop: Kestrel refuses a request
    /// over its limits before the application runs, with an empty body, so the limits above are
    /// checked by the application instead, which answers with a problem.
    /// </summary>
    public const int KestrelBackstopFactor = 4;
}

/// <summary>
/// Checks the request line and headers against <see cref="RequestLimitsOptions"/> first thing, and
/// answers 414 or 431 as <c>application/problem+json</c> (<c>request_too_large</c>).
/// </summary>
public static class RequestLimits
{
    public static IHostApplicationBuilder AddRequestLimits(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<RequestLimitsOptions>()
            .BindConfiguration(RequestLimitsOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<RequestLimitsOptions>>((kestrel, options) =>
        {
            var limits = options.Value;
            const int factor = RequestLimitsOptions.KestrelBackstopFactor;
            kestrel.Limits.MaxRequestHeadersTotalSize = Math.Max(kestrel.Limits.MaxRequestHeadersTotalSize, limits.MaxHeadersTotalBytes * factor);
            kestrel.Limits.MaxRequestHeaderCount = Math.Max(kestrel.Limits.MaxRequestHeaderCount, limits.MaxHeaderCount * factor);
            kestrel.Limits.MaxRequestLineSize = Math.Max(kestrel.Limits.MaxRequestLineSize, limits.MaxRequestTargetBytes * factor);
        });
        return builder;
    }

    public static IApplicationBuilder UseRequestLimits(this IApplicationBuilder app)
    {
        var options = app.ApplicationServices.GetRequiredService<IOptions<RequestLimitsOptions>>();
        return app.Use(async (context, next) =>
        {
            var limits = options.Value;
            var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? (context.Request.Path + context.Request.QueryString).ToString();
            if (target.Length > limits.MaxRequestTargetBytes)
            {
                await RefuseAsync(context, StatusCodes.Status414UriTooLong, "The request target is too long.",
                    $"The path and query string are {target.Length:N0} characters; the limit is {limits.MaxRequestTargetBytes:N0}.").ConfigureAwait(false);
                return;
            }

            var headers = context.Request.Headers;
            long total = 0;
            var count = 0;
            foreach (var (name, values) in headers)
            {
                foreach (var value in values)
                {
                    total += name.Length + (value?.Length ?? 0) + 4; // "name: value\r\n"
                    count++;
                }
            }

            if (total > limits.MaxHeadersTotalBytes || count > limits.MaxHeaderCount)
            {
                await RefuseAsync(context, StatusCodes.Status431RequestHeaderFieldsTooLarge, "The request headers are too large.",
                    $"The request carries {count:N0} header lines, {total:N0} bytes; the limits are {limits.MaxHeaderCount:N0} lines and {limits.MaxHeadersTotalBytes:N0} bytes.")
                    .ConfigureAwait(false);
                return;
            }

            await next(context).ConfigureAwait(false);
        });
    }

    private static Task RefuseAsync(HttpContext context, int status, string title, string detail)
    {
        // The client may still be sending a body nobody will read: close the connection after this answer.
        context.Response.Headers.Connection = "close";
        return ApiProblems.Problem(status, ApiProblems.RequestTooLarge, title, detail).ExecuteAsync(context);
    }
}
