using System.Net;
using System.Net.Sockets;
using Async.Serving.Api.Errors;
using Async.Serving.Api.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Async.Serving.Api.Jobs;

/// <summary>
/// Downloads <c>input.url</c> at submit, through the guarded HTTP client: only public addresses
/// (unless <c>Serving:Security:AllowPrivateNetworks</c>), at most <see cref="MaxRedirects"/>
/// redirects, each hop checked again, the whole fetch within <c>FetchTimeout</c>, the body within
/// <c>MaxImageBytes</c> (<c>MaxVideoBytes</c> for a video job). The body streams through the
/// <see cref="InputStager"/>: a large one goes to the blob store as it arrives, never whole in memory,
/// which is what makes a presigned object-storage URL a way to submit large inputs (docs/blobs.md).
/// The bytes are then handled exactly like a base64 input.
/// </summary>
internal sealed partial class InputFetcher(IHttpClientFactory clients, InputStager stager, IOptions<JobLimitsOptions> limits, ILogger<InputFetcher> logger)
{
    public const string HttpClientName = "input-fetch";

    public const int MaxRedirects = 3;

    /// <summary>Whether a URL is one we fetch at all: absolute http or https.</summary>
    public static bool IsFetchable(Uri uri) => uri.IsAbsoluteUri && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);

    /// <param name="maxBytes">The largest body accepted: the image or the video limit, by pipeline.</param>
    public async Task<(StagedInput? Input, ProblemHttpResult? Problem)> FetchAsync(Uri url, long maxBytes, CancellationToken cancellationToken)
    {
        var l = limits.Value;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(l.FetchTimeout);
        using var client = clients.CreateClient(HttpClientName);
        client.Timeout = Timeout.InfiniteTimeSpan; // the linked token bounds every hop and the body together

        var current = url;
        try
        {
            for (var hop = 0; ; hop++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, current);
                request.Headers.Accept.ParseAdd("image/*, video/*;q=0.9, */*;q=0.5");
                request.Headers.UserAgent.ParseAdd("Async.Serving/1");
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);

                if (IsRedirect(response.StatusCode))
                {
                    if (response.Headers.Location is not { } location)
                    {
                        return Unfetchable($"input.url answered {(int)response.StatusCode} without a Location header.");
                    }

                    if (hop == MaxRedirects)
                    {
                        return Unfetchable($"input.url redirects more than {MaxRedirects} times.");
                    }

                    var next = location.IsAbsoluteUri ? location : new Uri(current, location);
                    if (!IsFetchable(next))
                    {
                        return Unfetchable($"input.url redirects to a '{next.Scheme}' URL; only http and https are fetched.");
                    }

                    current = next;
                    continue;
                }

                if (!response.IsSuccessStatusCode)
                {
                    return Unfetchable($"input.url answered {(int)response.StatusCode} {response.ReasonPhrase}.");
                }

                if (response.Content.Headers.ContentLength is { } length && length > maxBytes)
                {
                    return TooLarge(length, maxBytes);
                }

                var stream = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false);
                await using (stream.ConfigureAwait(false))
                {
                    // One byte more than the limit means the body is too large, whatever its headers said.
                    var staged = await stager.StageAsync(stream, maxBytes, timeout.Token).ConfigureAwait(false);
                    return staged is null ? TooLarge(null, maxBytes) : (staged, null);
                }
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return Unfetchable($"input.url did not deliver the input within {l.FetchTimeout.TotalSeconds:0.###} s.");
        }
        catch (HttpRequestException ex) when (RefusedAddressException.Find(ex) is { } refused)
        {
            LogRefused(logger, refused.Host, refused.Category);
            var which = current == url ? "input.url" : "input.url redirects to a URL that";
            return (null, ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, ApiProblems.InputInvalid, "The input URL is not allowed.",
                $"{which} resolves to a private address ({refused.Category}); this server fetches input only from public addresses."));
        }
        catch (HttpRequestException ex)
        {
            var reason = ex.InnerException is SocketException { SocketErrorCode: SocketError.HostNotFound or SocketError.NoData or SocketError.TryAgain }
                ? $"its host '{current.Host}' could not be resolved"
                : ex.HttpRequestError switch
                {
                    HttpRequestError.ConnectionError => $"no connection to '{current.Authority}'",
                    HttpRequestError.SecureConnectionError => $"the TLS handshake with '{current.Authority}' failed",
                    _ => ex.Message,
                };
            return Unfetchable($"input.url could not be fetched: {reason}.");
        }
        catch (IOException ex)
        {
            return Unfetchable($"input.url could not be read to the end: {ex.Message}");
        }
    }

    private static bool IsRedirect(HttpStatusCode status) => status is HttpStatusCode.MovedPermanently or HttpStatusCode.Found
        or HttpStatusCode.SeeOther or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;

    private static (StagedInput?, ProblemHttpResult?) Unfetchable(string detail) =>
        (null, ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, ApiProblems.InputInvalid, "The input URL could not be fetched.", detail));

    private static (StagedInput?, ProblemHttpResult?) TooLarge(long? size, long max) =>
        (null, ApiProblems.Problem(StatusCodes.Status413PayloadTooLarge, ApiProblems.InputTooLarge, "The input is too large.",
            size is { } s
                ? $"input.url's image is {s:N0} bytes; the limit is {max:N0}."
                : $"input.url's image is larger than the limit of {max:N0} bytes."));

    [LoggerMessage(EventId = 310, Level = LogLevel.Information, Message = "input.url refused: {Host} resolves to a {Category} address")]
    private static partial void LogRefused(ILogger logger, string host, string category);
}
