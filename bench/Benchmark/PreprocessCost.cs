using System.Diagnostics;
using System.Globalization;
using Async.Serving.Fixtures;
using Async.Serving.Models;
using Async.Serving.Worker.Imaging;
using SkiaSharp;

namespace Async.Serving.Benchmark;

/// <summary>CPU milliseconds per image of one way of preprocessing JPEGs of one size.</summary>
internal sealed record PreprocessCostFigure(
    string Size, int Width, int Height, double Megapixels, int MeanJpegBytes,
    double FullDecodeMs, double BeforeMs, double NowMs, double DecodeAloneMs, double BeforeOverNow, double FullDecodeOverNow);

/// <summary>
/// What preprocessing one photo costs, on one thread: real photographs (<see cref="Photographs"/>)
/// as JPEGs of 0.3, 1.2 and 12 megapixels (quality 90), each preprocessed for the model's input
/// three ways in the same run: decoded at full size with the old path, the old path as it was
/// (<see cref="ReferencePreprocessor"/>, a JPEG DCT scale then Skia draws), and the worker's
/// <see cref="ImagePreprocessor"/> now; and the JPEG decode alone at the scale the worker picks,
/// the floor of any path that decodes. CPU is the process's (<c>/proc</c> user + system) over a
/// single-threaded loop, so other processes' load inflates it less than wall time.
/// </summary>
internal static class PreprocessCost
{
    private static readonly (string Name, int Width, int Height)[] Sizes = [("0.3 MP", 640, 480), ("1.2 MP", 1280, 960), ("12 MP", 4000, 3000)];

    public static IReadOnlyList<PreprocessCostFigure> Run(PreprocessingConfig config, TimeSpan budgetPerFigure)
    {
        var figures = new List<PreprocessCostFigure>();
        var destination = new float[3 * config.Width * config.Height];
        foreach (var (name, width, height) in Sizes)
        {
            var jpegs = Photographs.Names.Select(n => Photographs.Jpeg(n, width, height)).ToArray();
            var full = CpuMsPerImage(jpegs, budgetPerFigure, j => ReferencePreprocessor.Preprocess(j, config, destination, scaledDecode: false));
            var before = CpuMsPerImage(jpegs, budgetPerFigure, j => ReferencePreprocessor.Preprocess(j, config, destination));
            var now = CpuMsPerImage(jpegs, budgetPerFigure, j => ImagePreprocessor.Preprocess(j, config, long.MaxValue, destination));
            var decode = CpuMsPerImage(jpegs, budgetPerFigure, j => DecodeAlone(j, config));
            var figure = new PreprocessCostFigure(name, width, height, Math.Round(width * height / 1e6, 2), (int)jpegs.Average(j => j.Length),
                Math.Round(full, 2), Math.Round(before, 2), Math.Round(now, 2), Math.Round(decode, 2), Math.Round(before / now, 2), Math.Round(full / now, 2));
            figures.Add(figure);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {name,-6} {width}×{height} ({figure.MeanJpegBytes / 1024} KiB): CPU ms/image full-size decode {full,6:F2}, before {before,6:F2}, now {now,6:F2} (before/now {figure.BeforeOverNow:F2}×, full/now {figure.FullDecodeOverNow:F2}×); JPEG decode alone at the DCT scale {decode:F2}"));
        }

        return figures;
    }

    /// <summary>Process CPU ms per image over rounds of every image, after one untimed round, until the budget of CPU is spent.</summary>
    private static double CpuMsPerImage(byte[][] images, TimeSpan budget, Action<byte[]> preprocess)
    {
        foreach (var image in images)
        {
            preprocess(image);
        }

        using var process = Process.GetCurrentProcess();
        var started = process.TotalProcessorTime;
        var count = 0;
        TimeSpan spent;
        do
        {
            foreach (var image in images)
            {
                preprocess(image);
            }

            count += images.Length;
            process.Refresh();
            spent = process.TotalProcessorTime - started;
        }
        while (spent < budget);

        return spent.TotalMilliseconds / count;
    }

    /// <summary>Only <c>SKCodec.GetPixels</c> at the size the worker decodes at: what no path that decodes can avoid.</summary>
    private static void DecodeAlone(byte[] jpeg, PreprocessingConfig config)
    {
        using var data = SKData.CreateCopy(jpeg);
        using var codec = SKCodec.Create(data);
        var size = codec.GetScaledDimensions(Math.Max((float)config.Width / codec.Info.Width, (float)config.Height / codec.Info.Height));
        var info = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var bitmap = new SKBitmap(info);
        _ = codec.GetPixels(info, bitmap.GetPixels());
    }
}
