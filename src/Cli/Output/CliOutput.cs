using System.Text.Json;
using System.Text.Json.Serialization;
using Spectre.Console;

namespace Async.Serving.Cli.Output;

/// <summary>
/// Where a command writes: Spectre tables and progress for people on <see cref="Console"/>, or one
/// JSON document on <see cref="Out"/> with <c>--json</c> (snake_case, as the API writes it); errors
/// go to <see cref="Error"/> in both modes, so stdout stays parseable.
/// </summary>
public sealed class CliOutput(IAnsiConsole console, TextWriter error, bool json)
{
    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>The same, one document per line (<c>watch --json</c>).</summary>
    public static readonly JsonSerializerOptions JsonLineOptions = new(JsonOptions) { WriteIndented = false };

    public IAnsiConsole Console { get; } = console;

    /// <summary>The console's own writer: JSON goes here unwrapped and unstyled.</summary>
    public TextWriter Out => Console.Profile.Out.Writer;

    public TextWriter Error { get; } = error;

    public bool Json { get; } = json;

    /// <summary>
    /// Whether live bars can be drawn: an interactive console that understands ANSI. Elsewhere (a pipe,
    /// a CI log) Spectre's fallback prints a bar only at percentage milestones, once a second, so
    /// commands write a plain line for each change instead.
    /// </summary>
    public bool Bars => Console.Profile.Capabilities is { Interactive: true, Ansi: true };

    public void WriteJson<T>(T value)
    {
        Out.WriteLine(JsonSerializer.Serialize(value, JsonOptions));
        Out.Flush();
    }

    public void WriteJsonLine<T>(T value)
    {
        Out.WriteLine(JsonSerializer.Serialize(value, JsonLineOptions));
        Out.Flush();
    }

    public void WriteError(string message)
    {
        Error.WriteLine(message);
        Error.Flush();
    }

    /// <summary>A line for people; nothing in <c>--json</c> mode.</summary>
    public void Note(string markup)
    {
        if (!Json)
        {
            Console.MarkupLine(markup);
        }
    }
}
