using Async.Serving.Contracts;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Jobs;

/// <summary>
/// Section <c>Serving:Tenants</c>: settings per tenant id, for example
/// <c>Serving:Tenants:acme:DefaultPriority = high</c> (environment: <c>Serving__Tenants__acme__DefaultPriority</c>).
/// Configuration rather than a column of the API key table: priorities are an operator's decision
/// per customer, not per key, and need no schema, no management route and no lookup per submit.
/// </summary>
public sealed class TenantOptions : Dictionary<string, TenantSettings>
{
    public const string Section = "Serving:Tenants";

    public TenantOptions()
        : base(StringComparer.Ordinal)
    {
    }

    /// <summary>The priority of a submit that names none: the tenant's default, else normal.</summary>
    public string DefaultPriority(string tenant) =>
        TryGetValue(tenant, out var settings) && settings.DefaultPriority is { } priority ? priority : JobPriorities.Normal;

    /// <summary>The first setting that is not valid, in words; null when all are.</summary>
    public string? Problem() =>
        this.Where(t => t.Value.DefaultPriority is { } p && !JobPriorities.IsValid(p))
            .Select(t => $"{Section}:{t.Key}:DefaultPriority is '{t.Value.DefaultPriority}'; expected one of {string.Join(", ", JobPriorities.All)}.")
            .FirstOrDefault();
}

public sealed class TenantSettings
{
    /// <summary><c>low</c>, <c>normal</c> or <c>high</c>: the priority of the tenant's jobs that name none.</summary>
    public string? DefaultPriority { get; set; }
}

/// <summary>Fails the start on a tenant setting that is not valid, naming it.</summary>
internal sealed class TenantOptionsValidator : IValidateOptions<TenantOptions>
{
    public ValidateOptionsResult Validate(string? name, TenantOptions options) =>
        options.Problem() is { } problem ? ValidateOptionsResult.Fail(problem) : ValidateOptionsResult.Success;
}
