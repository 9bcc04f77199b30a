using Async.Serving.Cli;
using Async.Serving.Cli.Configuration;

namespace Async.Serving.UnitTests;

public sealed class CliConfigurationTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("serving-cli-env-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static Func<string, string?> Env(string? url = null, string? key = null) =>
        name => name switch { "SERVING_URL" => url, "SERVING_API_KEY" => key, _ => null };

    private void WriteEnvFile(string text)
    {
        Directory.CreateDirectory(Path.Combine(_root, ".serving"));
        File.WriteAllText(Path.Combine(_root, ".serving", "env"), text);
    }

    [Fact]
    public void The_env_file_of_up_sh_is_read_with_comments_quotes_and_export()
    {
        var values = EnvFile.Parse("# written by up.sh\nSERVING_URL=http://127.0.0.1:5080\r\nexport SERVING_API_KEY='sk_dev_abc'\n\nBROKEN LINE\nQUOTED=\"a=b\"\n");

        Assert.Equal("http://127.0.0.1:5080", values["SERVING_URL"]);
        Assert.Equal("sk_dev_abc", values["SERVING_API_KEY"]);
        Assert.Equal("a=b", values["QUOTED"]);
        Assert.Equal(3, values.Count);
    }

    [Fact]
    public void The_nearest_env_file_above_the_current_folder_is_found()
    {
        WriteEnvFile("SERVING_URL=http://127.0.0.1:5080\nSERVING_API_KEY=sk_file\n");
        var nested = Directory.CreateDirectory(Path.Combine(_root, "photos", "2026")).FullName;

        Assert.Equal(Path.Combine(_root, ".serving", "env"), EnvFile.Find(nested));
        var connection = ServingConnection.Resolve(null, null, Env(), nested);
        Assert.Equal(new Uri("http://127.0.0.1:5080"), connection.BaseAddress);
        Assert.Equal("sk_file", connection.ApiKey);
    }

    [Fact]
    public void Options_win_over_the_environment_which_wins_over_the_env_file()
    {
        WriteEnvFile("SERVING_URL=http://file:1\nSERVING_API_KEY=sk_file\n");

        var fromEnvironment = ServingConnection.Resolve(null, null, Env("http://env:2", null), _root);
        Assert.Equal("env", fromEnvironment.BaseAddress.Host);
        Assert.Equal("sk_file", fromEnvironment.ApiKey); // each value on its own

        var fromOptions = ServingConnection.Resolve("https://option:3", "sk_option", Env("http://env:2", "sk_env"), _root);
        Assert.Equal("option", fromOptions.BaseAddress.Host);
        Assert.Equal("sk_option", fromOptions.ApiKey);
    }

    [Fact]
    public void SERVING_ENV_FILE_names_the_env_file_when_the_tool_runs_outside_the_checkout()
    {
        WriteEnvFile("SERVING_URL=http://checkout:5080\nSERVING_API_KEY=sk_checkout\n");
        var elsewhere = Directory.CreateTempSubdirectory("serving-cli-elsewhere-").FullName;
        try
        {
            var env = (string name) => name == "SERVING_ENV_FILE" ? Path.Combine(_root, ".serving", "env") : null;
            var connection = ServingConnection.Resolve(null, null, env, elsewhere);
            Assert.Equal("checkout", connection.BaseAddress.Host);
            Assert.Equal("sk_checkout", connection.ApiKey);
        }
        finally
        {
            Directory.Delete(elsewhere);
        }
    }

    [Fact]
    public void A_missing_key_or_a_url_that_is_not_http_is_a_usage_error_that_says_where_to_set_it()
    {
        var noKey = Assert.Throws<CliUsageException>(() => ServingConnection.Resolve("http://x", null, Env(), _root));
        Assert.Contains("SERVING_API_KEY", noKey.Message, StringComparison.Ordinal);
        Assert.Contains(".serving/env", noKey.Message, StringComparison.Ordinal);

        var badUrl = Assert.Throws<CliUsageException>(() => ServingConnection.Resolve("ftp://x", "k", Env(), _root));
        Assert.Contains("ftp://x", badUrl.Message, StringComparison.Ordinal);
    }
}
