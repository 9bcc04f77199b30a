// Reads an OCR evaluation set with the worker's image.ocr engine (OcrModel, in-process, as the
// worker's OCR pipeline runs it) and scores it, with the outputs of other engines, against ground
// truth. scripts/eval-ocr.sh fetches the images, runs the peers and calls this.
//
// usage: Async.Serving.OcrEval --models DIR --images DIR --truth DIR --out DIR [--model ppocr@4] [--peer NAME=DIR]...
//   truth: NAME.txt per image (one line of text per line); images: NAME.png or NAME.jpg;
//   out: NAME.txt written by image.ocr; a peer's DIR: its NAME.txt per image.
using System.Globalization;
using Async.Serving.Models;
using Async.Serving.OcrEval;
using Async.Serving.Worker;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Inference;
using Async.Serving.Worker.Ocr;
using Microsoft.Extensions.Logging.Abstractions;

var options = new Dictionary<string, List<string>>(StringComparer.Ordinal);
for (var i = 0; i + 1 < args.Length; i += 2)
{
    if (!args[i].StartsWith("--", StringComparison.Ordinal))
    {
        Console.Error.WriteLine($"unexpected argument '{args[i]}'");
        return 2;
    }

    (options.TryGetValue(args[i][2..], out var list) ? list : options[args[i][2..]] = []).Add(args[i + 1]);
}

string Option(string name) => options.TryGetValue(name, out var v) ? v[^1] : throw new ArgumentException($"--{name} is required");
var models = Option("models");
var images = Option("images");
var truthDir = Option("truth");
var outDir = Option("out");
var modelId = options.TryGetValue("model", out var m) ? m[^1] : "ppocr@4";
var peers = (options.TryGetValue("peer", out var p) ? p : []).Select(s => s.Split('=', 2)).Select(s => (Name: s[0], Dir: s[1])).ToList();
Directory.CreateDirectory(outDir);

var repository = ModelRepository.Load(models, requireWeights: false);
var entry = repository.Resolve(modelId) ?? throw new ArgumentException($"{modelId} is not in {models}");
var sessions = new OnnxSessionFactory(new WorkerOptions(), NullLogger<OnnxSessionFactory>.Instance);
await using var model = new OcrModel(entry, sessions);
model.WarmUp();

var names = Directory.GetFiles(truthDir, "*.txt").Select(Path.GetFileNameWithoutExtension).OfType<string>().Order(StringComparer.Ordinal).ToList();
var engines = new List<string> { "image.ocr" };
engines.AddRange(peers.Select(x => x.Name));
var rows = new List<(string Name, string Size, int TruthLines, List<(double Recall, double Cer, int Lines)> Scores)>();
foreach (var name in names)
{
    var imagePath = new[] { ".png", ".jpg" }.Select(ext => Path.Combine(images, name + ext)).FirstOrDefault(File.Exists);
    if (imagePath is null)
    {
        Console.Error.WriteLine($"no image for {name} in {images}");
        return 1;
    }

    var bytes = await File.ReadAllBytesAsync(imagePath);
    var image = RgbImage.Decode(bytes, long.MaxValue, out var original, entry.Config.Ocr!.MaxImageSide);
    var result = await model.ReadAsync(image, CancellationToken.None);
    var ours = string.Join('\n', result.Lines.Select(l => l.Text));
    await File.WriteAllTextAsync(Path.Combine(outDir, name + ".txt"), ours + "\n");

    var truth = await File.ReadAllTextAsync(Path.Combine(truthDir, name + ".txt"));
    var outputs = new List<string> { ours };
    foreach (var (_, dir) in peers)
    {
        var file = Path.Combine(dir, name + ".txt");
        outputs.Add(File.Exists(file) ? await File.ReadAllTextAsync(file) : string.Empty);
    }

    rows.Add((name, $"{original.Width}×{original.Height}", OcrScore.Lines(truth),
        [.. outputs.Select(o => (OcrScore.WordRecall(truth, o), OcrScore.CharacterErrorRate(truth, o), OcrScore.Lines(o)))]));
}

var culture = CultureInfo.InvariantCulture;
var header = "| image | size | lines | " + string.Join(" | ", engines.Select(e => $"{e} recall | {e} CER | {e} lines")) + " |";
Console.WriteLine(header);
Console.WriteLine("|" + string.Concat(Enumerable.Repeat("---|", 3 + (3 * engines.Count))));
foreach (var (name, size, lines, scores) in rows)
{
    Console.WriteLine($"| {name} | {size} | {lines} | " + string.Join(" | ", scores.Select(s => string.Create(culture, $"{s.Recall:F3} | {s.Cer:F3} | {s.Lines}"))) + " |");
}

var mean = engines.Select((_, e) => (Recall: rows.Average(r => r.Scores[e].Recall), Cer: rows.Average(r => r.Scores[e].Cer), Lines: rows.Sum(r => r.Scores[e].Lines))).ToList();
Console.WriteLine($"| **mean** | | {rows.Sum(r => r.TruthLines)} | " + string.Join(" | ", mean.Select(s => string.Create(culture, $"**{s.Recall:F3}** | **{s.Cer:F3}** | {s.Lines}"))) + " |");
return 0;
