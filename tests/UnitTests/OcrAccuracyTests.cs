using System.Diagnostics;
using Async.Serving.Fixtures;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Ocr;
using SkiaSharp;
using Xunit.Abstractions;

namespace Async.Serving.UnitTests;

/// <summary>
/// Word accuracy of the engine over a fixed set of rendered lines: four fonts, sizes 16–48 px,
/// rotations 0°, ±5° and 180°. A word counts when it is found in the OCR output, in order.
/// </summary>
[Collection(OcrModelCollection.Name)]
public sealed class OcrAccuracyTests(OcrModelFixture fixture, ITestOutputHelper output)
{
    private static readonly string[] Sentences =
    [
        "The meeting starts at 9 in the morning",
        "Please bring your laptop and notes",
        "Total amount due 245 dollars",
        "Call me back after lunch",
        "The train leaves from platform 4",
        "Fresh bread and milk every day",
        "Room 312 is on the third floor",
        "We open at 8 and close at 6",
        "Keep this door closed at all times",
        "Order number 58213 has shipped",
        "The river flows past the old mill",
        "Turn left at the next corner",
        "Chapter 12 begins on page 207",
        "Water the plants twice a week",
        "Our office moved to a new building",
        "The price rose by 15 percent",
        "Children play in the park after school",
        "Save your work before closing",
        "Flight 762 departs at gate 19",
        "The library has over 4000 books",
        "Winter is coming early this year",
        "Read the manual before you start",
        "The garden is full of roses",
        "Apples cost 3 dollars per pound",
        "Send the report by Friday evening",
        "My phone number changed last month",
        "The museum is closed on Monday",
        "Add two cups of flour and stir",
        "The bridge is 850 meters long",
        "Students must return books on time",
        "A storm is expected tonight",
        "Parking is free after 7 pm",
        "The bakery sells cakes and pies",
        "Exit through the doors on your right",
        "Version 2 fixes several bugs",
        "The concert sold out in one hour",
        "Meet me at the station at noon",
        "Lights turn off automatically at night",
        "The team scored 3 goals in the final",
        "Thank you for your patience",
    ];

    private static readonly string[] Fonts = [TextImages.Sans, TextImages.Serif, TextImages.Mono, TextImages.SansBold];
    private static readonly int[] Sizes = [16, 24, 32, 48];
    private static readonly int[] Rotations = [0, 5, -5, 180];

    /// <summary>Words of <paramref name="expected"/> found in <paramref name="read"/>, matched in order.</summary>
    internal static int WordsFound(string expected, string read)
    {
        var words = read.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var next = 0;
        var found = 0;
        foreach (var word in expected.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var at = Array.IndexOf(words, word, next);
            if (at >= 0)
            {
                found++;
                next = at + 1;
            }
        }

        return found;
    }

    [Fact]
    public void Words_are_matched_in_order()
    {
        Assert.Equal(3, WordsFound("a b c", "a b c"));
        Assert.Equal(2, WordsFound("a b c", "a x c"));
        Assert.Equal(1, WordsFound("a b c", "c b"));
        Assert.Equal(0, WordsFound("a b", string.Empty));
    }

    [Fact]
    public async Task Word_accuracy_over_fonts_sizes_and_rotations_is_at_least_90_percent()
    {
        output.WriteLine($"Model loaded in {fixture.Model.LoadTime.TotalMilliseconds:F0} ms on {fixture.Model.Provider}, warmed up in {fixture.WarmUpTime.TotalMilliseconds:F0} ms");
        var accuracy = await MeasureAsync(fixture.Model, output);

        Assert.True(accuracy >= 0.9, $"word accuracy {accuracy:P1}");
    }

    /// <summary>Reads the fixed set of lines; prints each miss and the breakdown by font, size and rotation; returns the word accuracy.</summary>
    internal static async Task<double> MeasureAsync(OcrModel model, ITestOutputHelper output)
    {
        var total = 0;
        var found = 0;
        var groups = new Dictionary<string, (int Found, int Total)>(StringComparer.Ordinal);
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < Sentences.Length; i++)
        {
            var font = Fonts[i % 4];
            var size = Sizes[(i / 4) % 4];
            var rotation = Rotations[((i / 16) + i) % 4];
            var text = Sentences[i];
            var encoded = TextImages.Line(text, size, font, rotation, format: i % 3 == 0 ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png);
            if (Environment.GetEnvironmentVariable("OCR_DUMP") is { Length: > 0 } dump)
            {
                Directory.CreateDirectory(dump);
                File.WriteAllBytes(Path.Combine(dump, $"{i:D2}.{(i % 3 == 0 ? "jpg" : "png")}"), encoded);
                File.WriteAllText(Path.Combine(dump, $"{i:D2}.txt"), text);
            }

            var result = await model.ReadAsync(RgbImage.Decode(encoded, 50_000_000), CancellationToken.None);
            var read = string.Join(' ', result.Lines.Select(l => l.Text));
            var words = text.Split(' ').Length;
            var ok = WordsFound(text, read);
            total += words;
            found += ok;
            foreach (var key in new[] { $"font {Path.GetFileNameWithoutExtension(font)}", $"size {size}", $"rotation {rotation}" })
            {
                var g = groups.GetValueOrDefault(key);
                groups[key] = (g.Found + ok, g.Total + words);
            }

            if (ok < words)
            {
                output.WriteLine($"MISS {ok}/{words} [{Path.GetFileNameWithoutExtension(font)} {size}px {rotation}°] '{text}' → '{read}'");
            }
        }

        var elapsed = Stopwatch.GetElapsedTime(started);
        var accuracy = (double)found / total;
        output.WriteLine($"Word accuracy {accuracy:P1} ({found}/{total} words, {Sentences.Length} lines, {elapsed.TotalMilliseconds / Sentences.Length:F0} ms a line)");
        foreach (var (key, (f, t)) in groups.OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            output.WriteLine($"  {key,-22} {(double)f / t:P1} ({f}/{t})");
        }

        return accuracy;
    }
}
