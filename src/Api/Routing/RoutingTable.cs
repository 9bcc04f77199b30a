using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Async.Serving.Models;

namespace Async.Serving.Api.Routing;

/// <summary>
/// How a model name splits its submits between versions: non-negative integer weights, normalised
/// by their sum (90 and 10 is 90 % and 10 %; so is 9 and 1). Versions absent or at 0 get nothing.
/// </summary>
public sealed record RoutingTable(IReadOnlyDictionary<string, int> Weights, DateTimeOffset UpdatedAt, string UpdatedBy)
{
    /// <summary>The most one version may weigh, so that any sum fits.</summary>
    public const int MaxWeight = 1_000_000;

    /// <summary>The most characters a <c>routing_key</c> may have.</summary>
    public const int MaxRoutingKeyLength = 256;

    public long Total => Weights.Values.Sum(w => (long)w);

    /// <summary>Version <paramref name="version"/>'s share in percent (0 when it has none).</summary>
    public double Percent(string version) =>
        Total > 0 && Weights.TryGetValue(version, out var w) ? 100.0 * w / Total : 0;

    /// <summary>
    /// A key's place in [0, 100) for model <paramref name="name"/>: SHA-256 of name and key, so every
    /// API instance and every release places a key the same way, and different models place the
    /// same key independently.
    /// </summary>
    public static double Point(string name, string routingKey)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(name + "\n" + routingKey), hash);
        // 53 bits: every value is exact as a double.
        return (BinaryPrimitives.ReadUInt64BigEndian(hash) >> 11) * (100.0 / (1UL << 53));
    }

    /// <summary>
    /// The version whose band holds <paramref name="point"/> (in [0, 100)): bands of width weight/sum
    /// laid out in the order of <paramref name="versions"/> (oldest first), so that raising the newest
    /// version from 10 to 20 only moves the points between 80 and 90 to it, and nobody away from it.
    /// Null when no version has weight.
    /// </summary>
    public static ModelEntry? Pick(IReadOnlyList<(ModelEntry Version, int Weight)> versions, double point)
    {
        ArgumentNullException.ThrowIfNull(versions);
        var total = versions.Sum(v => (long)v.Weight);
        if (total <= 0)
        {
            return null;
        }

        long cumulative = 0;
        ModelEntry? last = null;
        foreach (var (version, weight) in versions)
        {
            if (weight <= 0)
            {
                continue;
            }

            cumulative += weight;
            last = version;
            if (point < 100.0 * cumulative / total)
            {
                return version;
            }
        }

        return last; // rounding at the top end
    }
}
