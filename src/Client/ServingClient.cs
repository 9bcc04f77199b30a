using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Async.Serving.Client;

/// <summary>
/// The Async.Serving HTTP API as a .NET client. Every answer that is not 2xx becomes a
/// <see cref="ServingApiException"/> with the problem's <c>code</c>. Retries belong to the
/// <see cref="HttpClient"/>'s handlers: <see cref="Create"/> and
/// <see cref="ServingClientServiceCollectionExtensions.AddServingClient(IServiceCollection, Action{ServingClientOptions})"/>
/// put the standard resilience pipeline there; a submit always carries an <c>Idempotency-Key</c>,
/// so that a retried submit gives the first job back rather than a second one.
/// </summary>
public sealed partial class ServingClient : IDisposable
{
    /// <summary>The longest <c>?wait=</c> the API takes.</summary>
    public static readonly TimeSpan MaxLongPoll = TimeSpan.FromSeconds(60);

    /// <summary>A request that must not be sent twice: the resilience pipeline retries it only after a 429 (refused before any work).</summary>
    internal static readonly HttpRequestOptionsKey<bool> NotRetriable = new("Async.Serving.Client.NotRetriable");

    private readonly HttpClient _http;
    private readonly TimeSpan _longPollLimit;
    private readonly IDisposable? _owner;

    /// <summary>A client over <paramref name="http"/>, whose <c>BaseAddress</c> (ending in <c>/</c>) and bearer key are already set.</summary>
    public ServingClient(HttpClient http)
        : this(http, MaxLongPoll, owner: null)
    {
    }

    internal ServingClient(HttpClient http, TimeSpan longPollLimit, IDisposable? owner)
    {
        ArgumentNullException.ThrowIfNull(http);
        _http = http;
        _longPollLimit = longPollLimit;
        _owner = owner;
    }

    /// <summary>
    /// A standalone client with the same handlers as <see cref="ServingClientServiceCollectionExtensions.AddServingClient(IServiceCollection, Action{ServingClientOptions})"/>:
    /// the standard resilience pipeline, retries honouring <c>Retry-After</c>. Dispose it when done.
    /// </summary>
    /// <exception cref="OptionsValidationException">The options are not valid.</exception>
    public static ServingClient Create(ServingClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var check = new ServingClientOptionsValidator().Validate(ServingClientServiceCollectionExtensions.DefaultName, options);
        if (check.Failed)
        {
            throw new OptionsValidationException(ServingClientServiceCollectionExtensions.DefaultName, typeof(ServingClientOptions), check.Failures);
        }

        var services = new ServiceCollection();
        services.AddServingClient(o =>
        {
            o.BaseAddress = options.BaseAddress;
            o.ApiKey = options.ApiKey;
            o.Timeout = options.Timeout;
            o.MaxRetries = options.MaxRetries;
            o.RetryDelay = options.RetryDelay;
        });
        var provider = services.BuildServiceProvider();
        var http = provider.GetRequiredService<IHttpClientFactory>().CreateClient(ServingClientServiceCollectionExtensions.DefaultName);
        return new ServingClient(http, options.LongPollLimit, provider);
    }

    public void Dispose()
    {
        _http.Dispose();
        _owner?.Dispose();
    }

    /// <summary>
    /// Submits a job: 202 with the job queued, or, with <see cref="SubmitRequest.Wait"/>, the job as it
    /// is when it finished or the wait ran out.
    /// </summary>
    public async Task<Job> SubmitAsync(SubmitRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Input);
        var path = request.Wait is { } wait ? $"v1/jobs?wait={wait.ToString(CultureInfo.InvariantCulture)}" : "v1/jobs";
        var message = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative));
        var retriable = true;
        try
        {
            message.Content = SubmitContent(request, out retriable);
            MarkCreate(message, request.IdempotencyKey, retriable);
            return await SendAsync(message, ServingClientJsonContext.Default.Job, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // The caller's stream stays the caller's: disposing the request would close it.
            if (request.Input is not StreamInput)
            {
                message.Dispose();
            }
        }
    }

    /// <summary>The job now.</summary>
    public Task<Job> GetAsync(string id, CancellationToken cancellationToken = default) =>
        GetAsync(id, wait: null, cancellationToken);

    /// <summary>
    /// Long-polls (<c>?wait=</c>, at most 60 s a request) until the job is terminal or
    /// <paramref name="timeout"/> has passed (no limit when null); then answers the job as it is,
    /// terminal or not.
    /// </summary>
    public async Task<Job> WaitAsync(string id, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        var started = Stopwatch.GetTimestamp();
        Job? job = null;
        while (true)
        {
            var left = timeout is { } t ? t - Stopwatch.GetElapsedTime(started) : _longPollLimit;
            if (left <= TimeSpan.Zero)
            {
                return job ?? await GetAsync(id, cancellationToken).ConfigureAwait(false);
            }

            var seconds = (int)Math.Ceiling((left < _longPollLimit ? left : _longPollLimit).TotalSeconds);
            job = await GetAsync(id, Math.Max(seconds, 1), cancellationToken).ConfigureAwait(false);
            if (job.IsTerminal)
            {
                return job;
            }
        }
    }

    /// <summary>
    /// Submits and waits: the submit itself waits up to 60 s (<see cref="SubmitRequest.Wait"/>, unless
    /// given), then <see cref="WaitAsync"/> for the rest of <paramref name="timeout"/>.
    /// </summary>
    public async Task<Job> RunAsync(SubmitRequest request, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var started = Stopwatch.GetTimestamp();
        var firstWait = timeout is { } t && t < _longPollLimit ? t : _longPollLimit;
        var job = await SubmitAsync(request.Wait is null ? request with { Wait = (int)Math.Floor(firstWait.TotalSeconds) } : request, cancellationToken)
            .ConfigureAwait(false);
        if (job.IsTerminal)
        {
            return job;
        }

        var left = timeout - Stopwatch.GetElapsedTime(started);
        return left <= TimeSpan.Zero ? job : await WaitAsync(job.Id, left, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Cancels a job: a queued one never runs, a running one is stopped by its worker (the answer may
    /// still say <c>running</c>). A job that has ended is a <see cref="ServingApiException"/> with code <c>conflict</c>.
    /// </summary>
    public Task<Job> CancelAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return SendAsync(HttpMethod.Post, $"v1/jobs/{Escape(id)}/cancel", body: null, ServingClientJsonContext.Default.Job, retriable: true, cancellationToken);
    }

    /// <summary>One page of the tenant's jobs, newest first, without outputs.</summary>
    public Task<JobPage> ListAsync(JobQuery? query = null, CancellationToken cancellationToken = default) =>
        GetAsync(Path("v1/jobs", ("status", query?.Status), ("pipeline", query?.Pipeline), ("limit", Number(query?.Limit)), ("cursor", query?.Cursor)),
            ServingClientJsonContext.Default.JobPage, cancellationToken);

    /// <summary>Every job that <paramref name="query"/> selects, page after page, from its cursor on.</summary>
    public async IAsyncEnumerable<Job> ListAllAsync(JobQuery? query = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        query ??= new JobQuery();
        while (true)
        {
            var page = await ListAsync(query, cancellationToken).ConfigureAwait(false);
            foreach (var job in page.Data)
            {
                yield return job;
            }

            if (page.NextCursor is null || page.Data.Count == 0)
            {
                yield break;
            }

            query = query with { Cursor = page.NextCursor };
        }
    }

    private Task<Job> GetAsync(string id, int? wait, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return GetAsync(Path($"v1/jobs/{Escape(id)}", ("wait", Number(wait))), ServingClientJsonContext.Default.Job, cancellationToken);
    }

    private static HttpContent SubmitContent(SubmitRequest request, out bool retriable)
    {
        retriable = true;
        if (request.Input is UrlInput url)
        {
            return JsonContent.Create(SubmitBody.From(request, new SubmitInputBody(url.Url.AbsoluteUri)), ServingClientJsonContext.Default.SubmitBody);
        }

        HttpContent file;
        string fileName;
        switch (request.Input)
        {
            case FileInput f:
                // Seekable: a retry sends it again from the start.
                file = new StreamContent(new FileStream(f.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024, FileOptions.Asynchronous | FileOptions.SequentialScan));
                file.Headers.ContentType = new MediaTypeHeaderValue(f.ContentType);
                fileName = System.IO.Path.GetFileName(f.Path);
                break;
            case StreamInput s:
                retriable = s.Stream.CanSeek;
                file = new StreamContent(s.Stream);
                file.Headers.ContentType = new MediaTypeHeaderValue(s.ContentType);
                fileName = s.FileName;
                break;
            case BytesInput b:
                file = new ReadOnlyMemoryContent(b.Bytes);
                file.Headers.ContentType = new MediaTypeHeaderValue(b.ContentType);
                fileName = b.FileName;
                break;
            default:
                throw new ArgumentException($"Unknown input {request.Input.GetType().Name}.", nameof(request));
        }

        var form = new MultipartFormDataContent();
        form.Add(file, "file", fileName);
        var json = JsonSerializer.Serialize(SubmitBody.From(request, input: null), ServingClientJsonContext.Default.SubmitBody);
        form.Add(new StringContent(json, Encoding.UTF8, "application/json"), "request");
        return form;
    }

    /// <summary>
    /// A request that creates (a job, a batch): its <c>Idempotency-Key</c>, the caller's or else a new
    /// one, so that the client's own retries never create twice; and not retried when its body cannot be sent again.
    /// </summary>
    private static void MarkCreate(HttpRequestMessage message, string? idempotencyKey, bool retriable)
    {
        message.Headers.TryAddWithoutValidation("Idempotency-Key", idempotencyKey ?? Guid.NewGuid().ToString("N"));
        if (!retriable)
        {
            message.Options.Set(NotRetriable, true);
        }
    }

    private Task<T> GetAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Get, path, body: null, type, retriable: true, cancellationToken);

    private Task<T> SendAsync<T>(HttpMethod method, string path, HttpContent? body, JsonTypeInfo<T> type, bool retriable, CancellationToken cancellationToken)
    {
        var message = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = body };
        if (!retriable)
        {
            message.Options.Set(NotRetriable, true);
        }

        return SendAndDisposeAsync(message, type, cancellationToken);
    }

    private async Task<T> SendAndDisposeAsync<T>(HttpRequestMessage message, JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        using (message)
        {
            return await SendAsync(message, type, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<T> SendAsync<T>(HttpRequestMessage message, JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        return await response.Content.ReadFromJsonAsync(type, cancellationToken).ConfigureAwait(false)
            ?? throw new ServingApiException((int)response.StatusCode, "empty_response", "The API answered without a body.", null, null, null);
    }

    private async Task SendAsync(HttpMethod method, string path, HttpContent? body, bool retriable, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = body };
        if (!retriable)
        {
            message.Options.Set(NotRetriable, true);
        }

        using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (!response.IsSuccessStatusCode)
        {
            throw await ServingApiException.FromResponseAsync(response, cancellationToken).ConfigureAwait(false);
        }
    }

    private static string Escape(string segment) => Uri.EscapeDataString(segment);

    private static string? Number(int? value) => value?.ToString(CultureInfo.InvariantCulture);

    private static string Path(string path, params (string Name, string? Value)[] query)
    {
        var builder = new StringBuilder(path);
        var separator = '?';
        foreach (var (name, value) in query)
        {
            if (value is not null)
            {
                builder.Append(separator).Append(name).Append('=').Append(Uri.EscapeDataString(value));
                separator = '&';
            }
        }

        return builder.ToString();
    }
}
