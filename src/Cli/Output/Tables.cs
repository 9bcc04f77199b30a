using System.Globalization;
using Async.Serving.Cli.Submit;
using Async.Serving.Client;
using Async.Serving.Contracts.Outputs;
using Spectre.Console;

namespace Async.Serving.Cli.Output;

/// <summary>The tables people read; every value that comes from the API is escaped.</summary>
internal static class Tables
{
    public static void WriteSummary(IAnsiConsole console, SubmitSummary summary)
    {
        var counts = new Table().Border(TableBorder.Rounded).AddColumns("files", "succeeded", "skipped (result there)", "failed", "unfinished");
        counts.AddRow(
            summary.Total.ToString(CultureInfo.InvariantCulture),
            $"[green]{summary.Succeeded}[/]",
            summary.Skipped.ToString(CultureInfo.InvariantCulture),
            summary.Failed > 0 ? $"[red]{summary.Failed}[/]" : "0",
            summary.Unfinished.ToString(CultureInfo.InvariantCulture));
        console.Write(counts);

        var failures = summary.Files.Where(f => f.IsFailure).ToList();
        if (failures.Count > 0)
        {
            var table = new Table().Border(TableBorder.Rounded).Title("[red]not succeeded[/]").AddColumns("file", "status", "code", "message", "job");
            foreach (var f in failures)
            {
                table.AddRow(E(f.File), E(f.Status), E(f.ErrorCode), E(f.ErrorMessage), E(f.JobId));
            }

            console.Write(table);
        }
    }

    public static void WriteJob(IAnsiConsole console, Job job)
    {
        var table = new Table().Border(TableBorder.Rounded).HideHeaders().AddColumns("field", "value");
        table.AddRow("id", E(job.Id));
        table.AddRow("status", Status(job.Status));
        table.AddRow("pipeline", E(job.Pipeline));
        table.AddRow("model", E(job.Model));
        table.AddRow("progress", Percent(job.Progress));
        table.AddRow("attempts", job.Attempts.ToString(CultureInfo.InvariantCulture));
        table.AddRow("created", Time(job.CreatedAt));
        table.AddRow("started", Time(job.StartedAt));
        table.AddRow("completed", Time(job.CompletedAt));
        table.AddRow("queue / execution", $"{Ms(job.QueueMs)} / {Ms(job.ExecutionMs)}");
        if (job.Error is { } error)
        {
            table.AddRow("error", $"[red]{E(error.Code)}[/]: {E(error.Message)}");
        }

        if (job.Output is { } output)
        {
            table.AddRow("output", E(Describe(output)));
        }

        if (job.ResultExpiresAt is { } expires)
        {
            table.AddRow("result expires", Time(expires));
        }

        console.Write(table);
    }

    public static void WriteJobs(IAnsiConsole console, IReadOnlyList<Job> jobs)
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumns("id", "status", "pipeline", "model", "progress", "created", "execution", "error");
        foreach (var job in jobs)
        {
            table.AddRow(E(job.Id), Status(job.Status), E(job.Pipeline), E(job.Model), Percent(job.Progress), Time(job.CreatedAt), Ms(job.ExecutionMs), E(job.Error?.Code));
        }

        console.Write(table);
    }

    public static void WriteModels(IAnsiConsole console, IReadOnlyList<Model> models)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumns("model", "pipeline", "latest", "max batch", "max delay", "instances", "uses", "workers", "providers");
        foreach (var m in models)
        {
            table.AddRow(E(m.Id), E(m.Pipeline), m.Latest ? "yes" : "", N(m.Batching.MaxBatchSize), $"{N(m.Batching.MaxQueueDelayMs)} ms", N(m.Batching.Instances),
                E(string.Join(", ", m.Uses)), m.Workers > 0 ? $"[green]{m.Workers}[/]" : "[red]0[/]", E(string.Join(", ", m.ExecutionProviders)));
        }

        console.Write(table);
    }

    public static void WriteUsage(IAnsiConsole console, Usage usage)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .Title($"usage from {Time(usage.From)} to {Time(usage.To)}")
            .AddColumns("pipeline", "model", "jobs", "succeeded", "failed", "compute", "input", "failure rate", "exec p50/p95/p99 ms");
        foreach (var column in table.Columns.Skip(2))
        {
            column.RightAligned();
        }

        foreach (var line in usage.Data.OrderBy(l => l.Pipeline, StringComparer.Ordinal).ThenBy(l => l.Model, StringComparer.Ordinal))
        {
            table.AddRow(E(line.Pipeline), E(line.Model), N(line.Jobs), N(line.Succeeded), N(line.Failed), Duration(line.ComputeMs), Bytes(line.InputBytes),
                line.FailureRate is { } rate ? rate.ToString("P1", CultureInfo.InvariantCulture) : "", Percentiles(line.ExecutionMs));
        }

        table.AddRow("[bold]total[/]", string.Empty, N(usage.Data.Sum(l => l.Jobs)), N(usage.Data.Sum(l => l.Succeeded)), N(usage.Data.Sum(l => l.Failed)),
            Duration(usage.Data.Sum(l => l.ComputeMs)), Bytes(usage.Data.Sum(l => l.InputBytes)), string.Empty, string.Empty);
        console.Write(table);
    }

    private static string Percentiles(Percentiles? p) =>
        p is null ? string.Empty : string.Create(CultureInfo.InvariantCulture, $"{p.P50:0.#} / {p.P95:0.#} / {p.P99:0.#}");

    /// <summary>A model name's versions with their weights and shares.</summary>
    public static void WriteRouting(IAnsiConsole console, ModelRouting routing)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .Title(E(routing.Weights.Count == 0 ? $"{routing.Model}: no weights, every submit goes to version {routing.DefaultVersion}" : $"{routing.Model}, set {Time(routing.UpdatedAt)} by {routing.UpdatedBy}"))
            .AddColumns("version", "weight", "share");
        foreach (var version in routing.Versions)
        {
            table.AddRow(E(version), routing.Weights.TryGetValue(version, out var w) ? N(w) : "",
                routing.Percent.TryGetValue(version, out var p) ? p.ToString("0.##", CultureInfo.InvariantCulture) + " %" : "");
        }

        console.Write(table);
    }

    public static void WriteKeys(IAnsiConsole console, IReadOnlyList<ApiKey> keys)
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumns("id", "name", "prefix", "admin", "created", "expires", "revoked");
        foreach (var k in keys)
        {
            table.AddRow(E(k.Id), E(k.Name), E(k.Prefix), k.Admin ? "yes" : "", Time(k.CreatedAt), Time(k.ExpiresAt), k.RevokedAt is { } r ? $"[red]{Time(r)}[/]" : "");
        }

        console.Write(table);
    }

    public static void WriteDeliveries(IAnsiConsole console, IReadOnlyList<Delivery> deliveries)
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumns("id", "at", "event", "job", "url", "attempt", "status", "detail");
        foreach (var d in deliveries)
        {
            var status = d.Status == "delivered" ? $"[green]{E(d.Status)}[/]" : $"[yellow]{E(d.Status)}[/]";
            table.AddRow(E(d.Id), Time(d.At), E(d.EventType), E(d.JobId), E(d.Url), N(d.Attempt), status, E(d.Detail));
        }

        console.Write(table);
    }

    /// <summary>A record's properties as rows: for the small answers (a created key, a redelivery).</summary>
    public static void WriteFields(IAnsiConsole console, IEnumerable<(string Field, string? Value)> fields)
    {
        var table = new Table().Border(TableBorder.Rounded).HideHeaders().AddColumns("field", "value");
        foreach (var (field, value) in fields)
        {
            table.AddRow(E(field), E(value));
        }

        console.Write(table);
    }

    public static string Describe(JobOutput output) => output switch
    {
        ImageEmbedOutput e => $"embedding, {e.Dims} dims",
        ImageOcrOutput o => $"{o.Lines.Count} line(s) of text" + (o.Lines.Count > 0 ? ": " + string.Join(" | ", o.Lines.Take(3).Select(l => l.Text)) : string.Empty),
        VideoAnalyzeOutput v => $"{v.DurationS.ToString("0.###", CultureInfo.InvariantCulture)} s, {v.FramesAnalyzed} frames, {v.Shots.Count} shot(s)"
            + (v.Text is { Count: > 0 } t ? $", {t.Count} text segment(s)" : string.Empty),
        _ => output.GetType().Name,
    };

    public static string Status(string status) => status switch
    {
        JobStatuses.Succeeded => $"[green]{status}[/]",
        JobStatuses.Failed or JobStatuses.Expired => $"[red]{status}[/]",
        JobStatuses.Cancelled => $"[yellow]{status}[/]",
        _ => E(status),
    };

    private static string E(string? text) => Markup.Escape(text ?? string.Empty);

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Percent(double progress) => (progress * 100).ToString("0", CultureInfo.InvariantCulture) + " %";

    private static string Time(DateTimeOffset? time) => time?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) ?? string.Empty;

    private static string Ms(long? ms) => ms is { } v ? v.ToString(CultureInfo.InvariantCulture) + " ms" : "-";

    private static string Duration(long ms) => TimeSpan.FromMilliseconds(ms) switch
    {
        { TotalSeconds: < 1 } => $"{ms} ms",
        { TotalMinutes: < 1 } d => d.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s",
        var d => d.ToString(@"d\.hh\:mm\:ss", CultureInfo.InvariantCulture).TrimStart('0', '.', ':'),
    };

    private static string Bytes(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => (bytes / 1024.0).ToString("0.0", CultureInfo.InvariantCulture) + " KiB",
        < 1024L * 1024 * 1024 => (bytes / 1024.0 / 1024).ToString("0.0", CultureInfo.InvariantCulture) + " MiB",
        _ => (bytes / 1024.0 / 1024 / 1024).ToString("0.00", CultureInfo.InvariantCulture) + " GiB",
    };
}
