namespace Async.Serving.Cli.Configuration;

/// <summary>
/// Where the API is and which key to use: <c>--url</c>/<c>--api-key</c>, else the environment
/// (<c>SERVING_URL</c>, <c>SERVING_API_KEY</c>), else the env file: <c>SERVING_ENV_FILE</c> when set
/// (scripts/serving sets it to the checkout's), else the nearest <c>.serving/env</c> (scripts/up.sh).
/// </summary>
public sealed record ServingConnection(Uri BaseAddress, string ApiKey)
{
    public const string UrlVariable = "SERVING_URL";
    public const string KeyVariable = "SERVING_API_KEY";
    public const string EnvFileVariable = "SERVING_ENV_FILE";

    public static ServingConnection Resolve(string? url, string? apiKey, Func<string, string?> environment, string currentDirectory)
    {
        ArgumentNullException.ThrowIfNull(environment);
        url = NullIfBlank(url) ?? NullIfBlank(environment(UrlVariable));
        apiKey = NullIfBlank(apiKey) ?? NullIfBlank(environment(KeyVariable));
        if (url is null || apiKey is null)
        {
            var path = NullIfBlank(environment(EnvFileVariable)) is { } named ? Path.GetFullPath(named, currentDirectory) : EnvFile.Find(currentDirectory);
            if (path is not null && File.Exists(path))
            {
                var file = EnvFile.Parse(File.ReadAllText(path));
                url ??= NullIfBlank(file.GetValueOrDefault(UrlVariable));
                apiKey ??= NullIfBlank(file.GetValueOrDefault(KeyVariable));
            }
        }

        if (url is null)
        {
            throw new CliUsageException($"No API address: pass --url, set {UrlVariable}, or run scripts/up.sh, which writes {EnvFile.RelativePath}.");
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var address) || (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps))
        {
            throw new CliUsageException($"The API address '{url}' is not an absolute http or https URL.");
        }

        if (apiKey is null)
        {
            throw new CliUsageException($"No API key: pass --api-key, set {KeyVariable}, or run scripts/up.sh, which writes {EnvFile.RelativePath}.");
        }

        return new ServingConnection(address, apiKey);
    }

    private static string? NullIfBlank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
