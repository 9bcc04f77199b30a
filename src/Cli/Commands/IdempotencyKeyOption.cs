using System.CommandLine;
using Async.Serving.Contracts;

namespace Async.Serving.Cli.Commands;

/// <summary>
/// <c>--idempotency-key KEY</c>, checked here with the API's rule (<see cref="IdempotencyKeyRule"/>), so
/// that a key the API would refuse is a usage error (exit 2) before any file is read or sent.
/// </summary>
internal static class IdempotencyKeyOption
{
    public static Option<string?> Create(string description)
    {
        var option = new Option<string?>("--idempotency-key") { Description = description, HelpName = "key" };
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } value && Problem(value) is { } problem)
            {
                r.AddError($"--idempotency-key must be 1 to {IdempotencyKeyRule.MaxLength} visible ASCII characters or spaces: {problem}.");
            }
        });
        return option;
    }

    /// <summary>Why the rule refuses <paramref name="key"/>, for the message; null when it takes it.</summary>
    private static string? Problem(string key)
    {
        if (IdempotencyKeyRule.IsWellFormed(key))
        {
            return null;
        }

        if (key.Length is 0 or > IdempotencyKeyRule.MaxLength)
        {
            return key.Length is 0 ? "it is empty" : $"it has {key.Length}";
        }

        var at = key.AsSpan().IndexOfAnyExceptInRange(' ', '~');
        return $"character {at + 1} is U+{(int)key[at]:X4}";
    }
}
