namespace Async.Serving.Api.Security;

/// <summary>A guarded connection was not opened: the host resolves to an address the <see cref="NetworkGuard"/> refuses.</summary>
public sealed class RefusedAddressException(string host, string category)
    : Exception($"'{host}' resolves to a {category} address.")
{
    public string Host { get; } = host;

    /// <summary>What kind of address it is, as <see cref="NetworkGuard.Classify"/> names it.</summary>
    public string Category { get; } = category;

    /// <summary>The refusal inside an <see cref="HttpRequestException"/> (SocketsHttpHandler wraps connect errors), if any.</summary>
    public static RefusedAddressException? Find(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is RefusedAddressException refused)
            {
                return refused;
            }
        }

        return null;
    }
}
