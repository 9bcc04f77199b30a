using System.Drawing;

namespace Async.Serving.Worker.Ocr;

/// <summary>
/// A detected text region: four corners in the original image's pixel coordinates, clockwise from
/// the top-left (top-left, top-right, bottom-right, bottom-left), and the detector's mean probability inside it.
/// </summary>
internal sealed record TextBox(PointF[] Points, float Score);

/// <summary>One recognised line: its text, mean character confidence, and its box in integer image pixels (clockwise from top-left).</summary>
internal sealed record OcrLine(string Text, float Confidence, Point[] Box);

/// <summary>What OCR found in one image: its size and the lines in reading order.</summary>
internal sealed record OcrResult(int Width, int Height, IReadOnlyList<OcrLine> Lines);
