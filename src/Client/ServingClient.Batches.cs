using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace Async.Serving.Client;

/// <summary>Batches: many jobs in one JSONL upload (<c>/v1/batches</c>).</summary>
public sealed partial class ServingClient
{
    /// <summary>
    /// Submits a batch. The items are written to the request one line at a time as they are
    /// enumerated (a file input is read then, as base64), so memory holds one item whatever their
    /// number. The request is not retried (the items are not replayed), except after a 429; the
    /// batch's lines become jobs after the answer: follow them with <see cref="GetBatchAsync"/> and
    /// <see cref="GetBatchResultsAsync"/>. It carries an <c>Idempotency-Key</c>
    /// (<see cref="BatchSubmitOptions.IdempotencyKey"/>, or a new one per call).
    /// </summary>
    public async Task<Batch> SubmitBatchAsync(IEnumerable<BatchItem> items, BatchSubmitOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(items);
        using var file = new JsonlContent(items);
        return await SubmitBatchAsync(file, retriable: false, options, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Submits a batch from a JSONL stream (a file of <c>{custom_id, pipeline, model, input, params}</c>
    /// lines), sent as it is read. It carries an <c>Idempotency-Key</c> (<see cref="BatchSubmitOptions.IdempotencyKey"/>,
    /// or a new one per call), so a stream that can seek (a file) is retried like a job's submit: every
    /// attempt sends the key, and an attempt after one that reached the API gets that batch back.
    /// </summary>
    public async Task<Batch> SubmitBatchAsync(Stream jsonl, BatchSubmitOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(jsonl);
        var file = new StreamContent(jsonl);
        file.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        return await SubmitBatchAsync(file, retriable: jsonl.CanSeek, options, cancellationToken).ConfigureAwait(false);
    }

    private async Task<Batch> SubmitBatchAsync(HttpContent file, bool retriable, BatchSubmitOptions? options, CancellationToken cancellationToken)
    {
        var form = new MultipartFormDataContent();
        var request = new BatchRequestBody(options?.WebhookUrl is { } url ? new UrlBody(url.AbsoluteUri) : null, options?.Metadata);
        form.Add(new StringContent(JsonSerializer.Serialize(request, ServingClientJsonContext.Default.BatchRequestBody), Encoding.UTF8, "application/json"), "request");
        form.Add(file, "file", "batch.jsonl");
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri("v1/batches", UriKind.Relative)) { Content = form };
        MarkCreate(message, options?.IdempotencyKey, retriable);
        return await SendAsync(message, ServingClientJsonContext.Default.Batch, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The batch now: its status and its lines counted by status.</summary>
    public Task<Batch> GetBatchAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return GetAsync($"v1/batches/{Escape(id)}", ServingClientJsonContext.Default.Batch, cancellationToken);
    }

    /// <summary>One page of the tenant's batches, newest first.</summary>
    public Task<BatchPage> ListBatchesAsync(int? limit = null, string? cursor = null, CancellationToken cancellationToken = default) =>
        GetAsync(Path("v1/batches", ("limit", Number(limit)), ("cursor", cursor)), ServingClientJsonContext.Default.BatchPage, cancellationToken);

    /// <summary>
    /// Cancels a batch: no more lines become jobs, and its queued and running jobs are cancelled. A
    /// batch that has ended is a <see cref="ServingApiException"/> with code <c>conflict</c>.
    /// </summary>
    public Task<Batch> CancelBatchAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return SendAsync(HttpMethod.Post, $"v1/batches/{Escape(id)}/cancel", body: null, ServingClientJsonContext.Default.Batch, retriable: true, cancellationToken);
    }

    /// <summary>
    /// The batch's results, one per line in input order, read from the response as it streams in:
    /// available at any time (lines not yet ended come with their status and no output).
    /// </summary>
    public async IAsyncEnumerable<BatchResult> GetBatchResultsAsync(string id, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        using var message = new HttpRequestMessage(HttpMethod.Get, new Uri($"v1/batches/{Escape(id)}/results", UriKind.Relative));
        using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, cancellationToken).ConfigureAwait(false);
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var reader = new StreamReader(stream, Encoding.UTF8);
            while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
            {
                if (line.Length > 0)
                {
                    yield return JsonSerializer.Deserialize(line, ServingClientJsonContext.Default.BatchResult)
                        ?? throw new ServingApiException((int)HttpStatusCode.OK, "invalid_response", "A results line was empty.", null, null, null);
                }
            }
        }
    }

    /// <summary>Items written as JSONL while the request is sent, one at a time.</summary>
    private sealed class JsonlContent : HttpContent
    {
        private static readonly byte[] Newline = "\n"u8.ToArray();
        private readonly IEnumerable<BatchItem> _items;

        public JsonlContent(IEnumerable<BatchItem> items)
        {
            _items = items;
            Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            foreach (var item in _items)
            {
                var line = new BatchLineBody
                {
                    CustomId = item.CustomId,
                    Pipeline = item.Pipeline,
                    Model = item.Model,
                    Input = await InputAsync(item.Input, cancellationToken).ConfigureAwait(false),
                    Params = item.Params,
                    Metadata = item.Metadata,
                    TtlSeconds = item.TtlSeconds,
                    TimeoutSeconds = item.TimeoutSeconds,
                    Priority = item.Priority,
                };
                await JsonSerializer.SerializeAsync(stream, line, ServingClientJsonContext.Default.BatchLineBody, cancellationToken).ConfigureAwait(false);
                await stream.WriteAsync(Newline, cancellationToken).ConfigureAwait(false);
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }

        private static async Task<BatchInputBody> InputAsync(JobInput input, CancellationToken cancellationToken)
        {
            switch (input)
            {
                case UrlInput url:
                    return new BatchInputBody(url.Url.AbsoluteUri, null);
                case BytesInput bytes:
                    return new BatchInputBody(null, Convert.ToBase64String(bytes.Bytes.Span));
                case FileInput file:
                    return new BatchInputBody(null, Convert.ToBase64String(await File.ReadAllBytesAsync(file.Path, cancellationToken).ConfigureAwait(false)));
                case StreamInput s:
                    using (var copy = new MemoryStream())
                    {
                        await s.Stream.CopyToAsync(copy, cancellationToken).ConfigureAwait(false);
                        return new BatchInputBody(null, Convert.ToBase64String(copy.GetBuffer().AsSpan(0, (int)copy.Length)));
                    }

                default:
                    throw new ArgumentException($"Unknown input {input.GetType().Name}.", nameof(input));
            }
        }
    }
}
