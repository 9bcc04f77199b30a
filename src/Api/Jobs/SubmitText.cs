using System.Text.Json;

namespace Async.Serving.Api.Jobs;

/// <summary>
/// Whether the text a submit carries is Unicode that can be stored and written back: no lone
/// surrogate (<c>"\ud800"</c> in JSON) and no bytes that are not UTF-8 inside a JSON string. Either
/// used to be stored and then broke every read of the tenant's jobs.
/// </summary>
public static class SubmitText
{
    public const string Problem = "Not valid Unicode text (a lone surrogate, or bytes that are not UTF-8).";

    /// <summary>True when <paramref name="text"/> (or null) has no unpaired surrogate.</summary>
    public static bool IsValid(string? text)
    {
        if (text is null)
        {
            return true;
        }

        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The path of the first string or property name in <paramref name="element"/> that is not valid text, or null.</summary>
    public static string? FirstInvalid(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                return Readable(element) ? null : path;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    string name;
                    try
                    {
                        name = property.Name;
                    }
                    catch (InvalidOperationException)
                    {
                        return path;
                    }

                    if (!IsValid(name))
                    {
                        return path;
                    }

                    if (FirstInvalid(property.Value, $"{path}.{name}") is { } bad)
                    {
                        return bad;
                    }
                }

                return null;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (FirstInvalid(item, $"{path}[{index++}]") is { } bad)
                    {
                        return bad;
                    }
                }

                return null;
            default:
                return null;
        }
    }

    private static bool Readable(JsonElement element)
    {
        try
        {
            // Transcoding fails on bytes that are not UTF-8 and on an escaped lone surrogate.
            return IsValid(element.GetString());
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
