using Microsoft.Extensions.Options;

namespace Async.Serving.Client;

/// <summary>Where the API is and how to reach it.</summary>
public sealed class ServingClientOptions
{
    /// <summary>The API's base address, for example <c>http://127.0.0.1:8080/</c>.</summary>
    public Uri BaseAddress { get; set; } = null!;

    /// <summary>The API key, sent as <c>Authorization: Bearer …</c>.</summary>
    public string ApiKey { get; set; } = string.Empty;

    /// <summary>
    /// The limit of one attempt of one request, until the answer's headers. Long-polls ask the
    /// server for at most this less 10 s, so that a long-poll is answered before the attempt is cut.
    /// </summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>Retries of a request after a transient failure (429, 5xx, a network error, an attempt timed out); 0 turns retries off.</summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>The first retry's delay when the answer has no <c>Retry-After</c>; it grows exponentially, with jitter.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The longest long-poll this client asks for: the API's limit of 60 s, or less when <see cref="Timeout"/> is short.</summary>
    internal TimeSpan LongPollLimit => TimeSpan.FromSeconds(Math.Clamp(Math.Floor((Timeout - TimeSpan.FromSeconds(10)).TotalSeconds), 1, 60));
}

/// <summary>Checks <see cref="ServingClientOptions"/> at start (and in <see cref="ServingClient.Create"/>).</summary>
internal sealed class ServingClientOptionsValidator : IValidateOptions<ServingClientOptions>
{
    public ValidateOptionsResult Validate(string? name, ServingClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (options.BaseAddress is not { IsAbsoluteUri: true } address || (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps))
        {
            failures.Add("ServingClientOptions.BaseAddress must be an absolute http or https URI.");
        }

        if (string.IsNullOrWhiteSpace(options.ApiKey))
        {
            failures.Add("ServingClientOptions.ApiKey is required.");
        }

        if (options.Timeout < TimeSpan.FromSeconds(15))
        {
            failures.Add("ServingClientOptions.Timeout must be at least 15 s.");
        }

        if (options.MaxRetries is < 0 or > 100)
        {
            failures.Add("ServingClientOptions.MaxRetries must be between 0 and 100.");
        }

        if (options.RetryDelay <= TimeSpan.Zero)
        {
            failures.Add("ServingClientOptions.RetryDelay must be positive.");
        }

        return failures.Count > 0 ? ValidateOptionsResult.Fail(failures) : ValidateOptionsResult.Success;
    }
}
