using System.Globalization;
using Async.Serving.Api.Auth;
using Async.Serving.Api.Errors;
using Async.Serving.Api.OpenApi;
using Async.Serving.Models;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Routing;

/// <summary>
/// <c>/v1/models/{name}/routing</c>: the weights by which submits of a bare model name are split
/// between its versions (canary, A/B, rollback), read and changed at run time with an admin key.
/// The tables are shared by every tenant, as the models are; <see cref="RoutingOptions.ManagingTenants"/>
/// limits who may change them.
/// </summary>
public static class RoutingApi
{
    public static RouteGroupBuilder MapRoutingApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/models/{name}/routing").RequireAuthorization("tenant").WithTags("Models")
            .AddEndpointFilter(RequireAdmin).ProducesProblems(403, 404);
        group.MapGet("/", GetAsync).WithName("GetModelRouting")
            .WithSummary("The model name's routing table: each version's weight and share, when and by whom it was set (admin scope).");
        group.MapPut("/", SetAsync).WithName("SetModelRouting").ProducesProblems(400, 422).DisableAntiforgery()
            .WithSummary("Set the weights of the model name's versions; the next submit of the bare name routes by them. Rollback: one version at 100 (admin scope).");
        group.MapDelete("/", DeleteAsync).WithName("DeleteModelRouting")
            .WithSummary("Remove the routing table: submits of the bare name go to its newest version again (admin scope).");
        return group;
    }

    private static async ValueTask<object?> RequireAdmin(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        if (!context.HttpContext.User.IsAdmin())
        {
            return ApiProblems.Problem(StatusCodes.Status403Forbidden, ApiProblems.Forbidden, "Admin scope required.",
                "Model routing needs a key with the admin scope; this key has none.");
        }

        return await next(context).ConfigureAwait(false);
    }

    internal static async Task<Results<Ok<RoutingResource>, ProblemHttpResult>> GetAsync(
        string name, ModelRepository models, RoutingStore tables, CancellationToken cancellationToken)
    {
        if (models.Versions(name) is not { Count: > 0 } versions)
        {
            return UnknownModel(name);
        }

        var table = await tables.GetAsync(versions[0].Name, cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(RoutingResource.From(versions, table));
    }

    internal static async Task<Results<Ok<RoutingResource>, ProblemHttpResult>> SetAsync(
        string name, SetRoutingRequest? request, HttpContext http, ModelRepository models, RoutingStore tables,
        TimeProvider clock, IOptions<RoutingOptions> options, CancellationToken cancellationToken)
    {
        if (models.Versions(name) is not { Count: > 0 } versions)
        {
            return UnknownModel(name);
        }

        if (NotManaging(http, options.Value) is { } refused)
        {
            return refused;
        }

        var (weights, problem) = Check(versions, request?.Weights);
        if (problem is not null)
        {
            return problem;
        }

        var table = new RoutingTable(weights!, Millis(clock.GetUtcNow()), UpdatedBy(http));
        await tables.SetAsync(versions[0].Name, table, cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(RoutingResource.From(versions, table));
    }

    internal static async Task<Results<Ok<RoutingResource>, ProblemHttpResult>> DeleteAsync(
        string name, HttpContext http, ModelRepository models, RoutingStore tables, IOptions<RoutingOptions> options, CancellationToken cancellationToken)
    {
        if (models.Versions(name) is not { Count: > 0 } versions)
        {
            return UnknownModel(name);
        }

        if (NotManaging(http, options.Value) is { } refused)
        {
            return refused;
        }

        await tables.DeleteAsync(versions[0].Name, cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(RoutingResource.From(versions, null));
    }

    /// <summary>
    /// The weights, checked against the model's versions: each an existing version, serving the
    /// pipeline of the newest (the one a bare name is checked against at submit), a whole number from
    /// 0 to <see cref="RoutingTable.MaxWeight"/>; at least one above 0. Versions are stored as the
    /// repository spells them.
    /// </summary>
    internal static (Dictionary<string, int>? Weights, ProblemHttpResult? Problem) Check(IReadOnlyList<ModelEntry> versions, IReadOnlyDictionary<string, int>? weights)
    {
        if (weights is not { Count: > 0 })
        {
            return (null, ApiProblems.Invalid("No weights.", new Dictionary<string, string[]> { ["weights"] = ["Give each version's weight, for example { \"1\": 90, \"2\": 10 }."] }));
        }

        var newest = versions[^1];
        var errors = new Dictionary<string, string[]>();
        var unknown = new Dictionary<string, string[]>();
        var checkedWeights = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (version, weight) in weights)
        {
            var field = "weights." + version;
            if (versions.FirstOrDefault(v => string.Equals(v.Version, version, StringComparison.OrdinalIgnoreCase)) is not { } entry)
            {
                unknown[field] = [$"{newest.Name} has no version '{version}'; it has {string.Join(", ", versions.Select(v => v.Version))}."];
            }
            else if (entry.Config.Pipeline != newest.Config.Pipeline)
            {
                errors[field] = [$"{entry.Id} serves {entry.Config.Pipeline}; {newest.Name} (newest {newest.Id}) serves {newest.Config.Pipeline}."];
            }
            else if (weight is < 0 or > RoutingTable.MaxWeight)
            {
                errors[field] = [$"A whole number from 0 to {RoutingTable.MaxWeight.ToString("N0", CultureInfo.InvariantCulture)}."];
            }
            else if (!checkedWeights.TryAdd(entry.Version, weight))
            {
                errors[field] = ["Given twice."];
            }
        }

        if (unknown.Count > 0)
        {
            return (null, ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, ApiProblems.UnknownModel, "Unknown model version.",
                $"Every weighted version must exist in the model repository. See GET /v1/models.", unknown));
        }

        if (errors.Count == 0 && checkedWeights.Values.All(w => w == 0))
        {
            errors["weights"] = ["At least one version needs a weight above 0."];
        }

        return errors.Count > 0 ? (null, ApiProblems.Invalid("Some weights are not valid.", errors)) : (checkedWeights, null);
    }

    /// <summary>Who changed a table: the tenant and the id of its key.</summary>
    private static string UpdatedBy(HttpContext http) => $"{http.User.TenantId()}/{http.User.ApiKeyId()}";

    private static ProblemHttpResult? NotManaging(HttpContext http, RoutingOptions options) =>
        options.ManagingTenants.Length == 0 || options.ManagingTenants.Contains(http.User.TenantId(), StringComparer.Ordinal)
            ? null
            : ApiProblems.Problem(StatusCodes.Status403Forbidden, ApiProblems.Forbidden, "Not a managing tenant.",
                "Routing tables are shared by every tenant; only the admin keys of the tenants in Serving:Routing:ManagingTenants may change them.");

    private static ProblemHttpResult UnknownModel(string name) =>
        ApiProblems.Problem(StatusCodes.Status404NotFound, ApiProblems.NotFound, "Unknown model.", $"There is no model '{name}'. See GET /v1/models.");

    private static DateTimeOffset Millis(DateTimeOffset t) => DateTimeOffset.FromUnixTimeMilliseconds(t.ToUnixTimeMilliseconds());
}

/// <summary>The body of <c>PUT /v1/models/{name}/routing</c>: each version's weight (whole numbers, normalised by their sum).</summary>
public sealed record SetRoutingRequest(Dictionary<string, int>? Weights);

/// <summary>A model name's routing: without a table, every submit of the bare name goes to <see cref="DefaultVersion"/>.</summary>
public sealed record RoutingResource
{
    public required string Model { get; init; }
    public required string Pipeline { get; init; }

    /// <summary>The newest version: where a bare name goes when it has no table.</summary>
    public required string DefaultVersion { get; init; }

    /// <summary>Every version of the model, oldest first.</summary>
    public required IReadOnlyList<string> Versions { get; init; }

    /// <summary>The weights as set; empty when the name has no table.</summary>
    public required IReadOnlyDictionary<string, int> Weights { get; init; }

    /// <summary>Each version's share of the submits, in percent (the weights normalised).</summary>
    public required IReadOnlyDictionary<string, double> Percent { get; init; }

    public DateTimeOffset? UpdatedAt { get; init; }

    /// <summary><c>tenant/key id</c> for a change through the API, <c>dashboard</c> for one from the dashboard.</summary>
    public string? UpdatedBy { get; init; }

    internal static RoutingResource From(IReadOnlyList<ModelEntry> versions, RoutingTable? table)
    {
        var newest = versions[^1];
        return new RoutingResource
        {
            Model = newest.Name,
            Pipeline = newest.Config.Pipeline,
            DefaultVersion = newest.Version,
            Versions = [.. versions.Select(v => v.Version)],
            Weights = table?.Weights ?? new Dictionary<string, int>(),
            Percent = table is null
                ? new Dictionary<string, double> { [newest.Version] = 100 }
                : versions.Where(v => table.Weights.ContainsKey(v.Version)).ToDictionary(v => v.Version, v => Math.Round(table.Percent(v.Version), 2)),
            UpdatedAt = table?.UpdatedAt,
            UpdatedBy = table?.UpdatedBy,
        };
    }
}
