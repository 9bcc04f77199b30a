using Async.Serving.Cli;
using Async.Serving.Cli.Output;
using Async.Serving.Client;
using Spectre.Console;

namespace Async.Serving.UnitTests;

/// <summary>The command line without an API: parse errors, missing settings, help, and how a problem reads.</summary>
public sealed class CliCommandLineTests
{
    private static async Task<(int Code, string Out, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        var cli = new ServingCli(console, error, _ => throw new InvalidOperationException("no API in unit tests"), _ => null, Path.GetTempPath());
        var code = await cli.RunAsync(args, CancellationToken.None);
        return (code, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("submit")]
    [InlineData("submit", "a.jpg", "--concurrency", "0")]
    [InlineData("submit", "a.jpg", "--priority", "urgent")]
    [InlineData("submit", "a.jpg", "--priority", "High")]
    [InlineData("batch", "submit", "batch.jsonl", "--priority", "")]
    [InlineData("jobs", "--status", "done")]
    [InlineData("frobnicate")]
    [InlineData("webhooks", "test", "not-a-url")]
    public async Task A_wrong_command_line_is_a_usage_error_with_exit_code_2(params string[] args)
    {
        var (code, _, error) = await RunAsync(args);

        Assert.Equal(ExitCodes.Usage, code);
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("submit", "a.jpg", "--priority", "urgent")]
    [InlineData("batch", "submit", "batch.jsonl", "--priority", "urgent")]
    public async Task A_priority_other_than_low_normal_or_high_is_refused_before_anything_is_sent(params string[] args)
    {
        // The client factory of these tests throws: a command that got as far as the API would not exit 2 with this message.
        var (code, _, error) = await RunAsync(args);

        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("--priority must be low, normal or high (lower case), not 'urgent'", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "it is empty")]
    [InlineData("nightly\t1", "character 8 is U+0009")]
    [InlineData("nächtlich", "character 2 is U+00E4")]
    [InlineData(null, "it has 256")]
    public async Task An_idempotency_key_the_api_would_refuse_is_a_usage_error_before_anything_is_sent(string? key, string problem)
    {
        // The client factory of these tests throws: a command that got as far as the API would not exit 2 with this message.
        var (code, _, error) = await RunAsync("batch", "submit", "batch.jsonl", "--idempotency-key", key ?? new string('k', 256));

        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains($"--idempotency-key must be 1 to 255 visible ASCII characters or spaces: {problem}.", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_idempotency_key_of_255_visible_characters_and_spaces_passes_the_command_line()
    {
        // It gets past parsing, to the connection, which these tests do not have.
        var (code, _, error) = await RunAsync("batch", "submit", "batch.jsonl", "--idempotency-key", "a key ~" + new string('k', 248));

        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("No API address", error, StringComparison.Ordinal);
        Assert.DoesNotContain("--idempotency-key", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_url_anywhere_the_command_says_where_to_set_one()
    {
        var (code, _, error) = await RunAsync("jobs");

        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("SERVING_URL", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_lists_the_commands_under_the_tools_name()
    {
        var (code, output, _) = await RunAsync("--help");

        Assert.Equal(ExitCodes.Ok, code);
        Assert.Contains("serving [command]", output, StringComparison.Ordinal);
        foreach (var command in new[] { "submit", "get", "wait", "watch", "cancel", "jobs", "models", "usage", "keys", "webhooks" })
        {
            Assert.Contains("  " + command, output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_problem_reads_as_its_code_status_detail_fields_and_a_hint()
    {
        var problem = new ServingApiException(400, "input_invalid", "Invalid period.", "from must be earlier than to.",
            new Dictionary<string, string[]> { ["from"] = ["Not an instant."] }, retryAfter: null);

        var text = ErrorReport.Format(ErrorReport.Describe(problem));

        Assert.StartsWith("error: input_invalid (400): Invalid period.", text, StringComparison.Ordinal);
        Assert.Contains("from must be earlier than to.", text, StringComparison.Ordinal);
        Assert.Contains("from: Not an instant.", text, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.ApiError, ErrorReport.ExitCode(problem));
        Assert.Contains("--api-key", ErrorReport.Format(ErrorReport.Describe(new ServingApiException(401, "unauthorized", "Unauthorized", null, null, null))),
            StringComparison.Ordinal);
    }
}
