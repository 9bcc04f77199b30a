using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Async.Serving.Client;
using Async.Serving.Contracts.Outputs;

namespace Async.Serving.Benchmark;

/// <summary>One submitted job as the client saw it: its id, the POST's latency, and when the POST began.</summary>
internal sealed record Submitted(string Id, double LatencyMs, DateTimeOffset SubmittedAt, string? Priority = null);

/// <summary>A finished job as GET /v1/jobs/{id} reported it; <see cref="Output"/> only when the caller asked to keep it.</summary>
internal sealed record Finished(
    string Id, string Status, DateTimeOffset? StartedAt, DateTimeOffset? CompletedAt, string? ErrorCode, JobOutput? Output = null, DateTimeOffset? CreatedAt = null, string? Cache = null);

/// <summary>The outcome of submitting a load: tickets, refusals, submit latencies, first and last submit.</summary>
internal sealed record LoadResult(
    IReadOnlyList<Submitted> Jobs, int Refused, IReadOnlyDictionary<string, int> RefusedBy, DateTimeOffset FirstSubmit, DateTimeOffset LastSubmit)
{
    public double SubmitSeconds => (LastSubmit - FirstSubmit).TotalSeconds;
}

/// <summary>
/// Drives the public HTTP API as a client would, through the client library (src/Client): multipart
/// submits from N concurrent clients, polling for results. The library runs over a plain
/// <see cref="HttpClient"/> here, without the resilience pipeline: a load generator must count a
/// refusal as a refusal and time each POST once, not hide 503s behind retries.
/// </summary>
internal sealed class LoadClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly ServingClient _client;

    public LoadClient(Uri baseAddress, string apiKey)
    {
        _http = new HttpClient(new WithoutIdempotencyKey(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 256,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        }))
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromSeconds(60),
        };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        _client = new ServingClient(_http);
    }

    public Uri BaseAddress => _http.BaseAddress!;

    public void Dispose()
    {
        _client.Dispose();
        _http.Dispose();
    }

    /// <summary>Readiness is not part of the v1 API (nor of the library): a plain GET.</summary>
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
    /// <paramref name="parameters"/> (a JSON object) goes in the request's <c>params</c>, <paramref name="priority"/> of the
    /// i-th job in its <c>priority</c> (null: the tenant's default). The result cache is off unless
    /// <paramref name="cache"/> (each figure but the cache's measures computed jobs).
    /// </summary>
    public async Task<LoadResult> SubmitManyAsync(
        string model, IReadOnlyList<byte[]> files, string contentType, int count, int concurrency, string pipeline = "image.embed", string? parameters = null,
        Func<int, string?>? priority = null, bool cache = false)
    {
        var jobs = new ConcurrentBag<(int Index, Submitted Job)>();
        var refused = new ConcurrentDictionary<string, int>();
        var next = -1;
        var first = DateTimeOffset.UtcNow;
        JsonElement? @params = parameters is null ? null : JsonDocument.Parse(parameters).RootElement.Clone();
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
                var request = new SubmitRequest
                {
                    Pipeline = pipeline,
                    Model = model,
                    Input = JobInput.FromBytes(files[i % files.Count], $"image{i}.{extension}", contentType),
                    Params = @params,
                    Priority = priority?.Invoke(i),
                    Cache = cache,
                };
                var began = Stopwatch.GetTimestamp();
                var submittedAt = DateTimeOffset.UtcNow;
                try
                {
                    var job = await _client.SubmitAsync(request).ConfigureAwait(false);
                    jobs.Add((i, new Submitted(job.Id, Stopwatch.GetElapsedTime(began).TotalMilliseconds, submittedAt, job.Priority)));
                }
                catch (ServingApiException ex)
                {
                    refused.AddOrUpdate(ex.Status.ToString(System.Globalization.CultureInfo.InvariantCulture), 1, (_, n) => n + 1);
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

    /// <summary>
    /// One job submitted and waited for as a synchronous caller would (<see cref="ServingClient.RunAsync"/>:
    /// <c>POST /v1/jobs?wait=60</c>, the API answering once the job has finished), the result cache off.
    /// The job as it ended, its output kept.
    /// </summary>
    public Task<Job> RunAsync(string model, byte[] file, string fileName, string contentType) =>
        _client.RunAsync(new SubmitRequest
        {
            Pipeline = "image.embed",
            Model = model,
            Input = JobInput.FromBytes(file, fileName, contentType),
            Cache = false,
        }, TimeSpan.FromSeconds(120));

    /// <summary>The job when it has finished (its <c>output</c> kept when <paramref name="keepOutput"/>), else null.</summary>
    public async Task<Finished?> GetAsync(string id, bool keepOutput = false)
    {
        Job job;
        try
        {
            job = await _client.GetAsync(id).ConfigureAwait(false);
        }
        catch (ServingApiException ex) when (ex.Code == "not_found")
        {
            return new Finished(id, "not_found", null, null, null);
        }

        return job.IsTerminal
            ? new Finished(id, job.Status, job.StartedAt, job.CompletedAt, job.Error?.Code, keepOutput ? job.Output : null, job.CreatedAt, job.Cache)
            : null;
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

    /// <summary>
    /// The library gives every submit an Idempotency-Key (safe retries); the benchmark never retries,
    /// and the key's claim in Redis would add work per submit that the figures so far did not include,
    /// so it measures the API as submitted without one.
    /// </summary>
    private sealed class WithoutIdempotencyKey(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Remove("Idempotency-Key");
            return base.SendAsync(request, cancellationToken);
        }
    }
}
