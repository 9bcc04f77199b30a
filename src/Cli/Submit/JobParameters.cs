using System.Text.Json;
using System.Text.Json.Nodes;

namespace Async.Serving.Cli.Submit;

/// <summary>
/// The job's <c>params</c> from <c>--params '{…}'</c> and any number of <c>--param key=value</c>
/// (these win). A value that reads as JSON (<c>4</c>, <c>true</c>, <c>[1,2]</c>) is taken as such,
/// anything else as a string; <c>key:=value</c> is not needed.
/// </summary>
public static class JobParameters
{
    public static JsonElement? Parse(string? json, IEnumerable<string>? pairs)
    {
        JsonObject result;
        try
        {
            result = string.IsNullOrWhiteSpace(json) ? [] : JsonNode.Parse(json) as JsonObject
                ?? throw new CliUsageException("--params must be a JSON object, for example '{\"sample_fps\":4}'.");
        }
        catch (JsonException ex)
        {
            throw new CliUsageException($"--params is not valid JSON: {ex.Message}");
        }

        foreach (var pair in pairs ?? [])
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new CliUsageException($"--param '{pair}' is not key=value.");
            }

            result[pair[..eq].Trim()] = Value(pair[(eq + 1)..]);
        }

        return result.Count == 0 && string.IsNullOrWhiteSpace(json) ? null : JsonSerializer.SerializeToElement(result);
    }

    private static JsonNode? Value(string text)
    {
        try
        {
            return JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            return JsonValue.Create(text);
        }
    }
}
