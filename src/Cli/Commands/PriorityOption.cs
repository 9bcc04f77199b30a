using System.CommandLine;
using Async.Serving.Contracts;

namespace Async.Serving.Cli.Commands;

/// <summary><c>--priority low|normal|high</c>, checked here (a usage error, exit 2) rather than by the API, as the other options are.</summary>
internal static class PriorityOption
{
    public static Option<string?> Create(string description)
    {
        var option = new Option<string?>("--priority") { Description = description, HelpName = "low|normal|high" };
        option.CompletionSources.Add(JobPriorities.All.ToArray());
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } value && !JobPriorities.IsValid(value))
            {
                r.AddError($"--priority must be low, normal or high (lower case), not '{value}'; left out, the tenant's default.");
            }
        });
        return option;
    }
}
