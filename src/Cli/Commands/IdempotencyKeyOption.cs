using System.CommandLine;

namespace Async.Serving.Cli.Commands;

/// <summary>
/// <c>--idempotency-key KEY</c>, checked here with the API's rule for an <c>Idempotency-Key</c> (1 to
/// 255 characters from space to <c>~</c>), so that a key the API would refuse is a usage error (exit 2)
/// before any file is read or sent.
/// </summary>
internal static class IdempotencyKeyOption
{
    /// <summary>The API's longest key (<c>IdempotencyKeys.MaxKeyLength</c> in src/Api).</summary>
    public const int MaxLength = 255;

    public static Option<string?> Create(string description)
    {
        var option = new Option<string?>("--idempotency-key") { Description = description, HelpName = "key" };
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } value && Problem(value) is { } problem)
            {
                r.AddError($"--idempotency-key must be 1 to {MaxLength} visible ASCII characters or spaces: {problem}.");
            }
        });
        return option;
    }

    private static string? Problem(string key)
    {
        if (key.Length is 0 or > MaxLength)
        {
            return key.Length is 0 ? "it is empty" : $"it has {key.Length}";
        }

        var at = key.AsSpan().IndexOfAnyExceptInRange(' ', '~');
        return at < 0 ? null : $"character {at + 1} is U+{(int)key[at]:X4}";
    }
}
