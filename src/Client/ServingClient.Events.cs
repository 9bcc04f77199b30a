using System.Net;
using System.Net.Http.Headers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace Async.Serving.Client;

/// <summary>Server-sent events of a job, resumed after a dropped connection.</summary>
public sealed partial class ServingClient
{
    /// <summary>Reconnects in a row without an event in between before <see cref="EventsAsync"/> gives up.</summary>
    internal const int MaxReconnects = 8;

    /// <summary>
    /// The job's events (<c>GET /v1/jobs/{id}/events</c>) until the <c>completed</c> one. When the
    /// connection drops, the stream is opened again with <c>Last-Event-ID</c>: the API sends only what
    /// came after, so no event is repeated. Give <paramref name="lastEventId"/> (an earlier
    /// <see cref="JobEvent.Id"/>) to resume a stream of an earlier call.
    /// </summary>
    /// <exception cref="ServingApiException">The job does not exist (<c>not_found</c>), or the API kept refusing.</exception>
    /// <exception cref="HttpRequestException">The API could not be reached for <see cref="MaxReconnects"/> tries in a row.</exception>
    public async IAsyncEnumerable<JobEvent> EventsAsync(string id, string? lastEventId = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        var last = string.IsNullOrEmpty(lastEventId) ? null : lastEventId;
        var failures = 0;
        var retryInterval = TimeSpan.FromMilliseconds(500);
        while (true)
        {
            Exception? dropped = null;
            HttpResponseMessage? response = null;
            try
            {
                response = await OpenEventsAsync(id, last, cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException ex) when (!cancellationToken.IsCancellationRequested)
            {
                dropped = ex;
            }
            catch (ServingApiException ex) when (ex.Status is 408 or 429 or >= 500)
            {
                dropped = ex;
                retryInterval = ex.RetryAfter ?? retryInterval;
            }

            if (response is not null)
            {
                using (response)
                {
                    var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                    var parser = SseParser.Create(stream, static (type, data) => JsonSerializer.Deserialize(data, ServingClientJsonContext.Default.Job)!);
                    await using var items = parser.EnumerateAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);
                    while (true)
                    {
                        try
                        {
                            if (!await items.MoveNextAsync().ConfigureAwait(false))
                            {
                                break;
                            }
                        }
                        catch (Exception ex) when (ex is IOException or HttpRequestException && !cancellationToken.IsCancellationRequested)
                        {
                            dropped = ex;
                            break;
                        }

                        var item = items.Current;
                        if (item.ReconnectionInterval is { } interval)
                        {
                            retryInterval = interval;
                        }

                        if (item.EventId is { Length: > 0 } eventId && eventId == last)
                        {
                            continue;
                        }

                        last = item.EventId is { Length: > 0 } ? item.EventId : last;
                        failures = 0;
                        yield return new JobEvent(last ?? string.Empty, item.EventType, item.Data);
                        if (item.EventType == "completed" || item.Data.IsTerminal)
                        {
                            yield break;
                        }
                    }
                }
            }

            // The stream ended before the completion: dropped, or an API instance shutting down. When
            // the job has ended anyway, the completion was seen before (or before lastEventId).
            if (dropped is null && (await GetAsync(id, cancellationToken).ConfigureAwait(false)).IsTerminal)
            {
                yield break;
            }

            if (++failures > MaxReconnects)
            {
                throw dropped ?? new HttpRequestException($"The event stream of job {id} kept ending before the job did.");
            }

            var backoff = TimeSpan.FromMilliseconds(retryInterval.TotalMilliseconds * Math.Pow(2, failures - 1));
            await Task.Delay(backoff < TimeSpan.FromSeconds(10) ? backoff : TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<HttpResponseMessage> OpenEventsAsync(string id, string? lastEventId, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"v1/jobs/{Escape(id)}/events", UriKind.Relative));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (lastEventId is not null)
        {
            request.Headers.TryAddWithoutValidation("Last-Event-ID", lastEventId);
        }

        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            using (response)
            {
                throw await ServingApiException.FromResponseAsync(response, cancellationToken).ConfigureAwait(false);
            }
        }

        return response;
    }
}
