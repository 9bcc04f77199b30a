using System.Text;
using Async.Serving.Models;

namespace Async.Serving.Worker.Ocr;

/// <summary>
/// Greedy CTC decoding over the recogniser's classes: blank (0), the dictionary's characters in
/// order, then a space. Each time step arrives reduced to (class index, probability).
/// </summary>
internal sealed class CtcDecoder
{
    private readonly string[] _classes;

    /// <param name="characters">The dictionary's characters; class <c>i</c> (from 1) is <c>characters[i - 1]</c>.</param>
    public CtcDecoder(IReadOnlyList<string> characters)
    {
        _classes = ["", .. characters];
    }

    /// <summary>Blank, the dictionary, and the space PaddleOCR appends (<c>use_space_char</c>).</summary>
    public int ClassCount => _classes.Length;

    /// <summary>Reads a PaddleOCR dictionary (one character a line) and appends the space.</summary>
    public static CtcDecoder FromDictionary(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelConfigException($"OCR dictionary '{path}' does not exist.");
        }

        var lines = File.ReadAllLines(path, Encoding.UTF8);
        return new CtcDecoder([.. lines, " "]);
    }

    /// <summary>
    /// Decodes <paramref name="steps"/>, laid out as (index, probability) pairs per time step: the
    /// arg-max class of each step, repeats merged and blanks dropped. The confidence is the mean
    /// probability of the characters kept; an empty result has confidence 0.
    /// </summary>
    public (string Text, float Confidence) Decode(ReadOnlySpan<float> steps)
    {
        var text = new StringBuilder();
        double sum = 0;
        var kept = 0;
        var previous = -1;
        for (var t = 0; t + 1 < steps.Length; t += 2)
        {
            var index = (int)steps[t];
            if (index != previous && index > 0 && index < _classes.Length)
            {
                text.Append(_classes[index]);
                sum += steps[t + 1];
                kept++;
            }

            previous = index;
        }

        return kept == 0 ? (string.Empty, 0f) : (text.ToString(), (float)(sum / kept));
    }
}
