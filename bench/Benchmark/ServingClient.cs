using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Async.Serving.Benchmark;

/// <summary>One submitted job as the client saw it.</summary>
internal sealed record Submitted(string Id, double LatencyMs);

/// <summary>A finished job as GET /v1/jobs/{id} reported it.</summary>
internal sealed record Finished(string Id, string Status, DateTimeOffset? StartedAt, DateTimeOffset? CompletedAt, string? ErrorCode);

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

    /// <summary>Submits <paramref name="count"/> jobs from <paramref name="concurrency"/> clients, cycling through <paramref name="files"/>.</summary>
    public async Task<LoadResult> SubmitManyAsync(string model, IReadOnlyList<byte[]> files, string contentType, int count, int concurrency)
    {
        var jobs = new ConcurrentBag<(int Index, Submitted Job)>();
        var refused = new ConcurrentDictionary<string, int>();
        var next = -1;
        var first = DateTimeOffset.UtcNow;
        var request = $$"""{"pipeline":"image.embed","model":"{{model}}"}""";
        var extension = contentType == "image/png" ? "png" : "jpg";
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
                    jobs.Add((i, new Submitted(json.RootElement.GetProperty("id").GetString()!, latency)));
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

    public async Task<Finished?> GetAsync(string id)
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
        return new Finished(id, status, Time(root, "started_at"), Time(root, "completed_at"), error);
    }

    /// <summary>
    /// Polls until every job has finished or <paramref name="timeout"/> passes. Politely: every 200 ms
    /// one sweep over the outstanding ids, oldest first, 8 GETs at a time, and a sweep stops after 16
    /// unfinished jobs in a row (jobs finish roughly in order, so the rest would be wasted requests).
    /// </summary>
    public async Task<IReadOnlyList<Finished>> WaitAllAsync(IReadOnlyList<Submitted> jobs, TimeSpan timeout)
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
                var results = await Task.WhenAll(chunk.Select(GetAsync)).ConfigureAwait(false);
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
