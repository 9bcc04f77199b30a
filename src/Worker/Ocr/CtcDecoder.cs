using System.Text;
using Async.Serving.Models;

namespace Async.Serving.Worker.Ocr;

/// <summary>
/// Greedy CTC decoding over the recogniser's classes: blank (0), the dictionary's characters in
/// order, then a space. Each time step arrives reduced to (class index, probability).
/// </summary>
internal sealed class CtcDecoder
{
    /// <summary>Latin typography sets no space after these, so none is inferred there.</summary>
    private const string NoSpaceAfter = "([{";

    /// <summary>Latin typography sets no space before these, so none is inferred there.</summary>
    private const string NoSpaceBefore = ")]},.;:!?%";

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
    public (string Text, float Confidence) Decode(ReadOnlySpan<float> steps) => Decode(steps, 2, 1f);

    /// <summary>
    /// Decodes <paramref name="steps"/> laid out <paramref name="stride"/> values per time step:
    /// arg-max class, its probability and (when the stride is 3) the space's probability. Greedy
    /// CTC, and a space between two characters when one of the blank steps between them gives the
    /// space at least <paramref name="spaceThreshold"/>: PP-OCRv4's recogniser, trained mostly on
    /// Chinese, often puts its arg-max on blank where a narrow word space is, with the space a
    /// clear second. No space is inferred after an opening bracket nor before closing punctuation.
    /// </summary>
    public (string Text, float Confidence) Decode(ReadOnlySpan<float> steps, int stride, float spaceThreshold)
    {
        var text = new StringBuilder();
        var space = _classes.Length - 1;
        double sum = 0;
        var kept = 0;
        var previous = -1;
        var spaceBetween = 0f;
        for (var t = 0; t + stride - 1 < steps.Length; t += stride)
        {
            var index = (int)steps[t];
            if (index == 0 && stride >= 3)
            {
                spaceBetween = Math.Max(spaceBetween, steps[t + 2]);
            }

            if (index != previous && index > 0 && index < _classes.Length)
            {
                if (index != space && kept > 0 && spaceBetween >= spaceThreshold && text[^1] != ' ' && !NoSpaceAfter.Contains(text[^1]) && !NoSpaceBefore.Contains(_classes[index][0]))
                {
                    text.Append(' ');
                }

                text.Append(_classes[index]);
                sum += steps[t + 1];
                kept++;
                spaceBetween = 0;
            }

            previous = index;
        }

        return kept == 0 ? (string.Empty, 0f) : (text.ToString(), (float)(sum / kept));
    }
}
