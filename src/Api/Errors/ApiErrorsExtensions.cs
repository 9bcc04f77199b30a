using StackExchange.Redis;

namespace Async.Serving.Api.Errors;

public static class ApiErrorsExtensions
{
    /// <summary>
    /// Problem details for every error (with the contract's <c>code</c>), 503 for a store that is
    /// down (<see cref="OutageExceptionHandler"/>), and the request line and header limits
    /// (<see cref="RequestLimits"/>).
    /// </summary>
    public static IHostApplicationBuilder AddApiErrors(this IHostApplicationBuilder builder)
    {
        builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = ApiProblems.AddCode);
        builder.Services.AddExceptionHandler<OutageExceptionHandler>();
        builder.AddRequestLimits();
        return builder;
    }

    /// <summary>
    /// The API's Redis connection fails a command at once while no connection is up, instead of
    /// holding it in the backlog for the whole command timeout (5 s): a request during a Redis
    /// outage gets its 503 <c>store_unavailable</c> without waiting.
    /// </summary>
    public static void FailFast(ConfigurationOptions redis) => redis.BacklogPolicy = BacklogPolicy.FailFast;
}
