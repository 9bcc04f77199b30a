using Async.Serving.Api.Auth;

namespace Async.Serving.Api.Jobs;

/// <summary>
/// Puts the tenant, and the job of a <c>/v1/jobs/{id}</c> route, in the scope of every line logged
/// while a jobs request is handled (the request's TraceId is already in scope through the host).
/// </summary>
internal sealed class JobRequestLogScope(ILogger<JobRequestLogScope> logger) : IEndpointFilter
{
    private static readonly Func<ILogger, string, IDisposable?> TenantScope =
        LoggerMessage.DefineScope<string>("Tenant {TenantId}");

    private static readonly Func<ILogger, string, string, IDisposable?> JobScope =
        LoggerMessage.DefineScope<string, string>("Job {JobId} of tenant {TenantId}");

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var http = context.HttpContext;
        var tenant = http.User.TenantId();
        using var scope = http.Request.RouteValues.TryGetValue("id", out var id) && id is string jobId
            ? JobScope(logger, jobId, tenant)
            : TenantScope(logger, tenant);
        return await next(context).ConfigureAwait(false);
    }
}
