using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Async.Serving.Benchmark;

/// <summary>One submitted job as the client saw it: its id, the POST's latency, and when the POST began.</summary>
internal sealed record Submitted(string Id, double LatencyMs, DateTimeOffset SubmittedAt);

/// <summary>A finished job as GET /v1/jobs/{id} reported it; <see cref="Output"/> only when the caller asked to keep it.</summary>
internal sealed record Finished(string Id, string Status, DateTimeOffset? StartedAt, DateTimeOffset? CompletedAt, string? ErrorCode, JsonElement? Output = null);

/// <summary>The outcome of submitting a load: tickets, refusals, submit latencies, first and last submit.</summary>
internal sealed record LoadResult(
    IReadOnlyList<Submitted> Jobs, int Refused, IReadOnlyDictionary<string, int> RefusedBy, DateTimeOffset FirstSubmit, DateTimeOffset LastSubmit)
{
    public double SubmitSeconds => (LastSubmit - FirstSubmit).TotalSeconds;
}

/// <summary>The public HTTP API, as a client would use it: multipart submit, polling for results.</summary>
internal sealed class ServingClient : IDisposable
{
    private readonly HttpClient _http;

    public ServingClient(Uri baseAddress, string apiKey)
    {
        _http = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 256,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        })
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromSeconds(60),
        };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    public void Dispose() => _http.Dispose();

    public async Task<bool> IsReadyAsync()
    {
        try
        {
            using var response = await _http.GetAsync(new Uri("/readyz", UriKind.Relative)).ConfigureAwait(false);
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    /// <summary>
    /// Submits <paramref name="count"/> jobs from <paramref name="concurrency"/> clients, cycling through <paramref name="files"/>;
    /// <paramref name="parameters"/> (a JSON object) goes in the request's <c>params</c>.
    /// </summary>
    public async Task<LoadResult> SubmitManyAsync(
        string model, IReadOnlyList<byte[]> files, string contentType, int count, int concurrency, string pipeline = "image.embed", string? parameters = null)
    {
        var jobs = new ConcurrentBag<(int Index, Submitted Job)>();
        var refused = new ConcurrentDictionary<string, int>();
        var next = -1;
        var first = DateTimeOffset.UtcNow;
        var request = parameters is null
            ? $$"""{"pipeline":"{{pipeline}}","model":"{{model}}"}"""
            : $$"""{"pipeline":"{{pipeline}}","model":"{{model}}","params":{{parameters}}}""";
        var extension = contentType switch
        {
            "image/png" => "png",
            "video/mp4" => "mp4",
            _ => "jpg",
        };
        async Task ClientAsync()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                using var form = new MultipartFormDataContent();
                var file = new ByteArrayContent(files[i % files.Count]);
                file.Headers.ContentType = new MediaTypeHeaderValue(contentType);
                form.Add(file, "file", $"image{i}.{extension}");
                form.Add(new StringContent(request), "request");
                var began = Stopwatch.GetTimestamp();
                var submittedAt = DateTimeOffset.UtcNow;
                try
                {
                    using var response = await _http.PostAsync(new Uri("/v1/jobs", UriKind.Relative), form).ConfigureAwait(false);
                    var latency = Stopwatch.GetElapsedTime(began).TotalMilliseconds;
                    if (response.StatusCode != HttpStatusCode.Accepted)
                    {
                        refused.AddOrUpdate(((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture), 1, (_, n) => n + 1);
                        continue;
                    }

                    await using var body = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
                    using var json = await JsonDocument.ParseAsync(body).ConfigureAwait(false);
                    jobs.Add((i, new Submitted(json.RootElement.GetProperty("id").GetString()!, latency, submittedAt)));
                }
                catch (HttpRequestException ex)
                {
                    refused.AddOrUpdate(ex.GetType().Name, 1, (_, n) => n + 1);
                }
                catch (TaskCanceledException)
                {
                    refused.AddOrUpdate("timeout", 1, (_, n) => n + 1);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(ClientAsync))).ConfigureAwait(false);
        var last = DateTimeOffset.UtcNow;
        return new LoadResult([.. jobs.OrderBy(j => j.Index).Select(j => j.Job)], refused.Values.Sum(), refused, first, last);
    }

    /// <summary>The job when it has finished (its <c>output</c> kept when <paramref name="keepOutput"/>), else null.</summary>
    public async Task<Finished?> GetAsync(string id, bool keepOutput = false)
    {
        using var response = await _http.GetAsync(new Uri($"/v1/jobs/{id}", UriKind.Relative)).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return new Finished(id, "not_found", null, null, null);
        }

        response.EnsureSuccessStatusCode();
        await using var body = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
        using var json = await JsonDocument.ParseAsync(body).ConfigureAwait(false);
        var root = json.RootElement;
        var status = root.GetProperty("status").GetString()!;
        if (status is "queued" or "running")
        {
            return null;
        }

        static DateTimeOffset? Time(JsonElement root, string name) =>
            root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetDateTimeOffset() : null;
        var error = root.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object ? e.GetProperty("code").GetString() : null;
        JsonElement? output = keepOutput && root.TryGetProperty("output", out var o) && o.ValueKind == JsonValueKind.Object ? o.Clone() : null;
        return new Finished(id, status, Time(root, "started_at"), Time(root, "completed_at"), error, output);
    }

    /// <summary>
    /// Polls until every job has finished or <paramref name="timeout"/> passes. Politely: every 200 ms
    /// one sweep over the outstanding ids, oldest first, 8 GETs at a time, and a sweep stops after 16
    /// unfinished jobs in a row (jobs finish roughly in order, so the rest would be wasted requests).
    /// With <paramref name="keepOutput"/>, each finished job's <c>output</c> is kept.
    /// </summary>
    public async Task<IReadOnlyList<Finished>> WaitAllAsync(IReadOnlyList<Submitted> jobs, TimeSpan timeout, bool keepOutput = false)
    {
        var outstanding = jobs.Select(j => j.Id).ToList();
        var done = new List<Finished>(jobs.Count);
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (outstanding.Count > 0 && Stopwatch.GetTimestamp() < deadline)
        {
            var unfinishedInARow = 0;
            var stillOutstanding = new List<string>();
            var position = 0;
            while (position < outstanding.Count && unfinishedInARow < 16)
            {
                var chunk = outstanding.Skip(position).Take(8).ToList();
                position += chunk.Count;
                var results = await Task.WhenAll(chunk.Select(id => GetAsync(id, keepOutput))).ConfigureAwait(false);
                for (var i = 0; i < chunk.Count; i++)
                {
                    if (results[i] is { } finished)
                    {
                        done.Add(finished);
                        unfinishedInARow = 0;
                    }
                    else
                    {
                        stillOutstanding.Add(chunk[i]);
                        unfinishedInARow++;
                    }
                }
            }

            stillOutstanding.AddRange(outstanding.Skip(position));
            outstanding = stillOutstanding;
            if (outstanding.Count > 0)
            {
                await Task.Delay(200).ConfigureAwait(false);
            }
        }

        return done;
    }
}
