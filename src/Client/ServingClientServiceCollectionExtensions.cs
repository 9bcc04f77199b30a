using System.Net;
using System.Net.Http.Headers;
using Async.Serving.Client;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Polly;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers <see cref="ServingClient"/> with <see cref="IHttpClientFactory"/>.</summary>
public static class ServingClientServiceCollectionExtensions
{
    /// <summary>The name of the client (and of its options) that <see cref="AddServingClient(IServiceCollection, Action{ServingClientOptions})"/> registers.</summary>
    public const string DefaultName = "Async.Serving.Client";

    /// <summary>
    /// Registers <see cref="ServingClient"/> as a typed client through <see cref="IHttpClientFactory"/>, with
    /// the standard resilience pipeline (<c>AddStandardResilienceHandler</c>) set for this API: retries on
    /// 429, 5xx, network errors and timed-out attempts, honouring <c>Retry-After</c>; submits retried
    /// safely (each carries an <c>Idempotency-Key</c>, and a 409 "key in use" is retried too); calls that
    /// would act twice (create a key, rotate the secret, redeliver, test event) retried only after a 429;
    /// attempt and total timeouts long enough for 60 s long-polls, and never applied to an event stream
    /// once it is open. Options are validated at start.
    /// </summary>
    public static IHttpClientBuilder AddServingClient(this IServiceCollection services, Action<ServingClientOptions> configure) =>
        services.AddServingClient(DefaultName, configure);

    /// <summary>As <see cref="AddServingClient(IServiceCollection, Action{ServingClientOptions})"/>, under a name of its own (several APIs in one process).</summary>
    public static IHttpClientBuilder AddServingClient(this IServiceCollection services, string name, Action<ServingClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<ServingClientOptions>(name).Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ServingClientOptions>, ServingClientOptionsValidator>());

        var builder = services.AddHttpClient(name, (provider, http) =>
        {
            var options = provider.GetRequiredService<IOptionsMonitor<ServingClientOptions>>().Get(name);
            var address = options.BaseAddress.AbsoluteUri;
            http.BaseAddress = new Uri(address.EndsWith('/') ? address : address + "/");
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", options.ApiKey);
            http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("Async.Serving.Client", typeof(ServingClient).Assembly.GetName().Version?.ToString(3)));
            // The resilience pipeline times each attempt and the whole; the client's own timeout would cut long-polls.
            http.Timeout = Timeout.InfiniteTimeSpan;
        });

        builder.AddStandardResilienceHandler().Configure((resilience, provider) =>
            Configure(resilience, provider.GetRequiredService<IOptionsMonitor<ServingClientOptions>>().Get(name)));
        builder.AddTypedClient((http, provider) =>
            new ServingClient(http, provider.GetRequiredService<IOptionsMonitor<ServingClientOptions>>().Get(name).LongPollLimit, owner: null));
        return builder;
    }

    /// <summary>
    /// The standard pipeline's limits are made for short calls (10 s an attempt, 30 s in all): here an
    /// attempt may last <see cref="ServingClientOptions.Timeout"/> (a 60 s long-poll fits), the whole
    /// call every attempt and the delays between them. The timeouts end when the answer's headers
    /// arrive, so an event stream, once open, is not cut.
    /// </summary>
    internal static void Configure(HttpStandardResilienceOptions resilience, ServingClientOptions options)
    {
        resilience.AttemptTimeout.Timeout = options.Timeout;
        var retries = Math.Max(options.MaxRetries, 1);
        resilience.TotalRequestTimeout.Timeout = (options.Timeout * (retries + 1)) + TimeSpan.FromMinutes(2);
        // The circuit breaker samples at least two attempt timeouts (a rule of the standard pipeline).
        resilience.CircuitBreaker.SamplingDuration = options.Timeout * 2 + TimeSpan.FromSeconds(1);

        var retry = resilience.Retry;
        retry.MaxRetryAttempts = retries;
        retry.Delay = options.RetryDelay;
        retry.BackoffType = DelayBackoffType.Exponential;
        retry.UseJitter = true;
        retry.ShouldRetryAfterHeader = true;
        var transient = retry.ShouldHandle;
        var off = options.MaxRetries == 0;
        retry.ShouldHandle = args =>
        {
            if (off)
            {
                return PredicateResult.False();
            }

            var status = args.Outcome.Result?.StatusCode;
            if (args.Context.GetRequestMessage() is { } request && request.Options.TryGetValue(ServingClient.NotRetriable, out var notRetriable) && notRetriable)
            {
                return new ValueTask<bool>(status == HttpStatusCode.TooManyRequests);
            }

            // 409 with Retry-After: an earlier attempt of this submit holds its Idempotency-Key still; the retry gets its job.
            return status == HttpStatusCode.Conflict && args.Outcome.Result!.Headers.RetryAfter is not null
                ? PredicateResult.True()
                : transient(args);
        };
    }
}
