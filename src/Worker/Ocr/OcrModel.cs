using System.Buffers;
using System.Diagnostics;
using System.Drawing;
using System.Numerics.Tensors;
using Async.Serving.Models;
using Async.Serving.Worker.Batching;
using Async.Serving.Worker.Imaging;
using Async.Serving.Worker.Inference;
using Microsoft.ML.OnnxRuntime;
using SkiaSharp;

namespace Async.Serving.Worker.Ocr;

/// <summary>
/// A PaddleOCR model folder loaded in this worker: the DB text detector, whose images from every
/// job share one batcher that groups them by size (<see cref="DetectionBatcher"/>, <c>instances</c>
/// concurrent runs), the 0°/180° angle classifier and the recogniser, whose crops from every job
/// share dynamic batchers — one classifier batcher and one recogniser batcher per width bucket, the
/// recogniser's buckets sharing one gate of <c>instances</c> runs.
/// </summary>
internal sealed class OcrModel : IAsyncDisposable
{
    /// <summary>Width of the angle classifier's input; wider crops are squeezed to it.</summary>
    public const int ClassifierWidth = 192;

    /// <summary>Values the recogniser's batcher returns per time step: arg-max class, its probability, the space's probability.</summary>
    private const int RecStride = 3;

    /// <summary>Least probability of the space on a blank step between two characters for a space to be read there (<see cref="CtcDecoder"/>).</summary>
    public const float SpaceThreshold = 0.05f;

    /// <summary>Line height, in detector pixels, the second detection pass scales the image for (see <see cref="DetectAsync"/>).</summary>
    public const double RefinedLineHeight = 24;

    // PaddleOCR normalises detection input with ImageNet statistics, in the order of OpenCV's BGR planes.
    private static readonly float[] DetMean = [0.485f, 0.456f, 0.406f];
    private static readonly float[] DetStd = [0.229f, 0.224f, 0.225f];

    private readonly OcrConfig _config;
    private readonly InferenceSession _det;
    private readonly InferenceSession _rec;
    private readonly InferenceSession? _cls;
    private readonly string[] _detNames;
    private readonly string[] _recNames;
    private readonly string[] _clsNames = [];
    private readonly SemaphoreSlim _recGate;
    private readonly RunOptions _runOptions = new();
    private readonly int[] _buckets;
    private readonly DynamicBatcher[] _recBatchers;
    private readonly DynamicBatcher? _clsBatcher;
    private readonly DetectionBatcher _detBatcher;
    private readonly CtcDecoder _decoder;

    /// <param name="entry">The model folder.</param>
    /// <param name="sessions">Creates its ONNX Runtime sessions.</param>
    /// <param name="options">The worker's <c>OcrDetection*</c> settings (the detector's batching); the defaults when null.</param>
    public OcrModel(ModelEntry entry, OnnxSessionFactory sessions, WorkerOptions? options = null)
    {
        options ??= new WorkerOptions();
        var started = Stopwatch.GetTimestamp();
        Entry = entry;
        var configPath = Path.Combine(entry.Directory, "config.json");
        _config = entry.Config.Ocr ?? throw new ModelConfigException($"{configPath}: an image.ocr model needs the 'ocr' section.");
        // The repository checked them: increasing multiples of 8.
        _buckets = _config.RecWidthBuckets;

        _decoder = CtcDecoder.FromDictionary(Path.Combine(entry.Directory, _config.Dictionary));
        var created = new List<InferenceSession>();
        try
        {
            (_det, Provider) = Create(_config.Detection);
            (_rec, _) = Create(_config.Recognition);
            if (_config.Classifier.Length > 0)
            {
                (_cls, _) = Create(_config.Classifier);
                _clsNames = Names(_cls, _config.Classifier);
            }

            _detNames = Names(_det, _config.Detection);
            _recNames = Names(_rec, _config.Recognition);
            var classes = _rec.OutputMetadata[_recNames[1]].Dimensions[^1];
            if (classes > 0 && classes != _decoder.ClassCount)
            {
                throw new ModelConfigException(
                    $"{configPath}: the recogniser '{_config.Recognition}' has {classes} classes; the dictionary '{_config.Dictionary}' gives {_decoder.ClassCount} (blank + {_decoder.ClassCount - 2} characters + space).");
            }
        }
        catch
        {
            created.ForEach(s => s.Dispose());
            _runOptions.Dispose();
            throw;
        }

        // A detector exported with a fixed batch dimension runs one image at a time.
        var detectionBatch = _det.InputMetadata[_detNames[0]].Dimensions is [> 0, ..] ? 1 : options.OcrDetectionMaxBatch;
        var instances = entry.Config.Instances;
        var delay = TimeSpan.FromMilliseconds(entry.Config.MaxQueueDelayMs);
        _detBatcher = new DetectionBatcher(
            $"{entry.Id}/det", detectionBatch, options.OcrDetectionMaxBatchPixels, options.OcrDetectionBucketStep, delay, instances, ExecuteDetector);
        _recGate = new SemaphoreSlim(instances, instances);
        _recBatchers = [.. _buckets.Select(width => new DynamicBatcher(
            $"{entry.Id}/rec{width}", 3 * TextCrop.Height * width, RecStride * (width / 8), entry.Config.MaxBatchSize, delay, instances,
            (inputs, count, outputs) => ExecuteRecognizer(width, inputs, count, outputs)))];
        if (_cls is not null)
        {
            _clsBatcher = new DynamicBatcher(
                $"{entry.Id}/cls", 3 * TextCrop.Height * ClassifierWidth, 2, entry.Config.MaxBatchSize, delay, instances, ExecuteClassifier);
        }

        Batchers = [.. _recBatchers, .. _clsBatcher is null ? Array.Empty<DynamicBatcher>() : [_clsBatcher]];
        LoadTime = Stopwatch.GetElapsedTime(started);

        (InferenceSession, string) Create(string file)
        {
            var path = Path.Combine(entry.Directory, file);
            if (!File.Exists(path))
            {
                throw new ModelConfigException($"{configPath}: the OCR network '{file}' does not exist.");
            }

            var result = sessions.Create(path, entry.Config.ExecutionProvider);
            created.Add(result.Session);
            return result;
        }

        static string[] Names(InferenceSession session, string file) =>
            session.InputMetadata.Count == 1 && session.OutputMetadata.Count == 1
                ? [session.InputMetadata.Keys.Single(), session.OutputMetadata.Keys.Single()]
                : throw new ModelConfigException($"OCR network '{file}' must have one input and one output.");
    }

    public ModelEntry Entry { get; }

    /// <summary>The execution provider the detector runs on (<c>cuda</c> or <c>cpu</c>).</summary>
    public string Provider { get; }

    public TimeSpan LoadTime { get; }

    /// <summary>Every recogniser bucket's batcher, then the classifier's (when there is one), for metrics.</summary>
    public IReadOnlyList<DynamicBatcher> Batchers { get; }

    /// <summary>The text detector's batcher (images of every job, grouped by size).</summary>
    public DetectionBatcher Detector => _detBatcher;

    /// <summary>The recogniser's width buckets, ascending.</summary>
    public IReadOnlyList<int> RecWidthBuckets => _buckets;

    /// <summary>
    /// Runs the detector on a small image, each recogniser bucket with one item, and the largest
    /// bucket and the classifier with a full batch, so the first jobs pay no warm-up.
    /// </summary>
    public TimeSpan WarmUp()
    {
        var started = Stopwatch.GetTimestamp();
        var blank = new byte[3 * 64 * 64];
        Array.Fill(blank, (byte)255);
        DetectAsync(new RgbImage(64, 64, blank), CancellationToken.None).GetAwaiter().GetResult(); // at start-up, nothing to wait for
        foreach (var (width, batcher) in _buckets.Zip(_recBatchers))
        {
            ExecuteRecognizer(width, new float[batcher.InputLength], 1, new float[batcher.OutputLength]);
        }

        var n = Entry.Config.MaxBatchSize;
        var largest = _recBatchers[^1];
        ExecuteRecognizer(_buckets[^1], new float[n * largest.InputLength], n, new float[n * largest.OutputLength]);
        if (_clsBatcher is not null)
        {
            ExecuteClassifier(new float[n * _clsBatcher.InputLength], n, new float[n * _clsBatcher.OutputLength]);
        }

        return Stopwatch.GetElapsedTime(started);
    }

    /// <summary>Detection and recognition of one image.</summary>
    public async Task<OcrResult> ReadAsync(RgbImage image, CancellationToken cancellationToken)
    {
        var boxes = await DetectAsync(image, cancellationToken).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        var lines = await RecognizeAsync(image, boxes, cancellationToken).ConfigureAwait(false);
        return new OcrResult(image.Width, image.Height, lines);
    }

    /// <summary>
    /// Text regions of <paramref name="image"/>: scaled so its longer side is at most
    /// <c>det_max_side</c> (each side a multiple of 32, at least 32), run through the detector with
    /// the images of other jobs of a similar size (<see cref="DetectionBatcher"/>; waiting
    /// asynchronously, so a queue of OCR jobs holds no thread), its own part of the probability map
    /// post-processed (<see cref="DbPostProcessor"/>).
    /// </summary>
    /// <remarks>
    /// Small type is only a few detector pixels high: on a big photo (a dense page shot from arm's
    /// length) after the scaling down, on a small photo (a page 384 pixels wide) at its own size.
    /// Its regions then come out loose, the tightly set lines touch and merge, and the crops read
    /// badly. When the median line height is under <c>det_refine_below</c> detector pixels,
    /// detection runs once more at the scale that makes it about <see cref="RefinedLineHeight"/>,
    /// up to <c>det_max_side_refined</c> on the longer side (scaling a small image up, as
    /// PaddleOCR's <c>limit_type: min</c> does by the image's size), and those boxes are used.
    /// </remarks>
    public async Task<IReadOnlyList<TextBox>> DetectAsync(RgbImage image, CancellationToken cancellationToken)
    {
        if (image.Width <= 0 || image.Height <= 0 || image.Pixels.Length != 3 * image.Width * image.Height)
        {
            throw new ArgumentException($"An RGB24 image of {image.Width}×{image.Height} holds {3 * image.Width * image.Height} bytes, not {image.Pixels.Length}.", nameof(image));
        }

        var first = DetectionSize(image.Width, image.Height, _config.DetMaxSide);
        var boxes = await DetectAtAsync(image, first, cancellationToken).ConfigureAwait(false);
        if (boxes.Count == 0 || _config.DetRefineBelow <= 0)
        {
            return boxes;
        }

        var scale = (double)first.Width / image.Width;
        var median = boxes.Select(b => LineHeight(b.Points) * scale).Order().ElementAt(boxes.Count / 2);
        if (median >= _config.DetRefineBelow)
        {
            return boxes;
        }

        // The longer side that makes the median line about RefinedLineHeight detector pixels high,
        // scaling a small image up as much as a large one down.
        var longer = Math.Max(first.Width, first.Height);
        var refined = (int)Math.Min(_config.DetMaxSideRefined, Math.Ceiling(longer * RefinedLineHeight / Math.Max(median, 1)));
        return refined < longer * 1.2
            ? boxes
            : await DetectAtAsync(image, DetectionSize(image.Width, image.Height, refined, int.MaxValue), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>One detector run on <paramref name="count"/> images of <paramref name="width"/>×<paramref name="height"/>: [count, 3, H, W] in, [count, 1, H, W] probabilities out.</summary>
    private void ExecuteDetector(Memory<float> inputs, int count, int width, int height, Span<float> maps)
    {
        using var tensor = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, inputs, [count, 3, height, width]);
        using var results = _det.Run(_runOptions, [_detNames[0]], [tensor], [_detNames[1]]);
        var output = results[0].GetTensorDataAsSpan<float>();
        if (output.Length != maps.Length)
        {
            throw new InvalidOperationException($"The detector returned {output.Length} values for {count} images of {width}×{height}.");
        }

        output.CopyTo(maps);
    }

    /// <summary>The shorter of a quad's mean edge lengths: a text line's height.</summary>
    private static double LineHeight(PointF[] q) =>
        Math.Min((Geometry.Distance(q[0], q[1]) + Geometry.Distance(q[2], q[3])) / 2, (Geometry.Distance(q[1], q[2]) + Geometry.Distance(q[3], q[0])) / 2);

    private async Task<List<TextBox>> DetectAtAsync(RgbImage image, (int Width, int Height) size, CancellationToken cancellationToken)
    {
        var (width, height) = size;
        var length = width * height;
        var input = ArrayPool<float>.Shared.Rent(3 * length);
        var map = ArrayPool<float>.Shared.Rent(length);
        try
        {
            using (var resized = image.Resize(width, height))
            {
                WriteDetectionPlanes(resized.GetPixelSpan(), input.AsSpan(0, 3 * length));
            }

            await _detBatcher.DetectAsync(input, map, width, height, cancellationToken).ConfigureAwait(false);

            return DbPostProcessor.Extract(map.AsSpan(0, length), width, height, image.Width, image.Height, _config, scoreComponent: true);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(input);
            ArrayPool<float>.Shared.Return(map);
        }
    }

    /// <summary>
    /// Reads the text in <paramref name="boxes"/>: every crop is rectified, classified (and turned
    /// when upside down) and recognised through the shared batchers, all at once; lines that read
    /// empty or below <c>min_confidence</c> are dropped; the rest come back in reading order.
    /// </summary>
    public async Task<IReadOnlyList<OcrLine>> RecognizeAsync(RgbImage image, IReadOnlyList<TextBox> boxes, CancellationToken cancellationToken)
    {
        var crops = new Crop[boxes.Count];
        try
        {
            for (var i = 0; i < boxes.Count; i++)
            {
                crops[i] = Prepare(image, boxes[i].Points);
            }

            cancellationToken.ThrowIfCancellationRequested();
            var flip = _clsBatcher is null
                ? new bool[crops.Length]
                : await Task.WhenAll(crops.Select(c => IsUpsideDownAsync(c, cancellationToken))).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            var read = await Task.WhenAll(crops.Select((c, i) => ReadCropAsync(c, flip[i], cancellationToken))).ConfigureAwait(false);

            var kept = new List<OcrLine>();
            var upsideDown = 0;
            for (var i = 0; i < read.Length; i++)
            {
                var (text, confidence, turned180) = read[i];
                if (text.Trim().Length > 0 && confidence >= _config.MinConfidence)
                {
                    kept.Add(new OcrLine(text, confidence, ToPixels(boxes[i].Points, image.Width, image.Height)));
                    upsideDown += turned180 ? 1 : 0;
                }
            }

            // When most lines were read upside down the page is: it is read in the order of the page turned 180°.
            var turned = upsideDown * 2 > kept.Count;
            var order = ReadingOrder.Order([.. kept.Select(l => turned
                ? Geometry.OrderClockwise([.. l.Box.Select(p => new PointF(image.Width - p.X, image.Height - p.Y))])
                : [.. l.Box.Select(p => (PointF)p)])]);
            return [.. order.Select(i => kept[i])];
        }
        finally
        {
            foreach (var crop in crops)
            {
                crop.Dispose();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var batcher in Batchers)
        {
            await batcher.DisposeAsync().ConfigureAwait(false);
        }

        await _detBatcher.DisposeAsync().ConfigureAwait(false);
        _det.Dispose();
        _rec.Dispose();
        _cls?.Dispose();
        _runOptions.Dispose();
        _recGate.Dispose();
    }

    /// <summary>
    /// The detector's input size for an image: the longer side scaled to at most
    /// <paramref name="maxSide"/> (never up), each side rounded to a multiple of 32 and at least 32.
    /// </summary>
    public static (int Width, int Height) DetectionSize(int width, int height, int maxSide) => DetectionSize(width, height, maxSide, 0);

    /// <summary>
    /// The detector's input size for an image: scaled up so that its shorter side is at least
    /// <paramref name="minSide"/> (as PaddleOCR's <c>limit_type: min</c>), and down so that its
    /// longer side is at most <paramref name="maxSide"/>, the second limit winning; each side
    /// rounded to a multiple of 32 and at least 32.
    /// </summary>
    public static (int Width, int Height) DetectionSize(int width, int height, int maxSide, int minSide)
    {
        var up = Math.Max(1.0, (double)minSide / Math.Min(width, height));
        var scale = Math.Min(up, (double)maxSide / Math.Max(width, height));
        return (Round32(width * scale), Round32(height * scale));

        static int Round32(double side) => Math.Max(32, (int)Math.Round(side / 32, MidpointRounding.AwayFromZero) * 32);
    }

    /// <summary>Index of the smallest bucket at least <paramref name="width"/> wide; the largest when none is.</summary>
    public static int ChooseBucket(IReadOnlyList<int> ascendingBuckets, int width)
    {
        for (var i = 0; i < ascendingBuckets.Count; i++)
        {
            if (ascendingBuckets[i] >= width)
            {
                return i;
            }
        }

        return ascendingBuckets.Count - 1;
    }

    private static void WriteDetectionPlanes(ReadOnlySpan<byte> rgba, Span<float> destination)
    {
        var plane = destination.Length / 3;
        var blue = destination[..plane];
        var green = destination.Slice(plane, plane);
        var red = destination.Slice(2 * plane, plane);
        float mb = 1f / (255 * DetStd[0]), ab = -DetMean[0] / DetStd[0];
        float mg = 1f / (255 * DetStd[1]), ag = -DetMean[1] / DetStd[1];
        float mr = 1f / (255 * DetStd[2]), ar = -DetMean[2] / DetStd[2];
        for (var i = 0; i < plane; i++)
        {
            blue[i] = (rgba[(4 * i) + 2] * mb) + ab;
            green[i] = (rgba[(4 * i) + 1] * mg) + ag;
            red[i] = (rgba[4 * i] * mr) + ar;
        }
    }

    private static Point[] ToPixels(PointF[] quad, int width, int height) =>
        [.. quad.Select(p => new Point(
            Math.Clamp((int)MathF.Round(p.X), 0, width - 1),
            Math.Clamp((int)MathF.Round(p.Y), 0, height - 1)))];

    private Crop Prepare(RgbImage image, PointF[] quad)
    {
        using var native = TextCrop.Rectify(image, quad, TextCrop.Margin);
        var scaled = TextCrop.ScaledWidth(native.Width, native.Height);
        var bucket = ChooseBucket(_buckets, scaled);
        // Small type is scaled up with a cubic filter: linear blurs the gaps between words and letters.
        var recognizer = native.Height < TextCrop.Height
            ? RgbImage.ResizeBitmap(native, Math.Min(scaled, _buckets[^1]), TextCrop.Height, new SKSamplingOptions(SKCubicResampler.CatmullRom))
            : RgbImage.ResizeBitmap(native, Math.Min(scaled, _buckets[^1]), TextCrop.Height);
        SKBitmap? classifier = null;
        if (_clsBatcher is not null && scaled > ClassifierWidth)
        {
            classifier = RgbImage.ResizeBitmap(native, ClassifierWidth, TextCrop.Height);
        }

        return new Crop(recognizer, classifier, bucket);
    }

    private async Task<bool> IsUpsideDownAsync(Crop crop, CancellationToken cancellationToken)
    {
        var batcher = _clsBatcher!;
        var buffer = ArrayPool<float>.Shared.Rent(batcher.InputLength);
        try
        {
            buffer.AsSpan(0, batcher.InputLength).Clear();
            TextCrop.WritePlanes(crop.Classifier ?? crop.Recognizer, buffer, ClassifierWidth, rotate180: false);
            var output = await batcher.InferAsync(buffer, cancellationToken).ConfigureAwait(false);
            return output[1] >= _config.ClassifierThreshold;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Reads a crop. One the classifier calls upside down is read both ways and the reading with
    /// the higher confidence wins: on small or blurred type the classifier sometimes turns an
    /// upright line round, and the recogniser's confidence tells the garbage from the text.
    /// </summary>
    private async Task<(string Text, float Confidence, bool Turned)> ReadCropAsync(Crop crop, bool upsideDown, CancellationToken cancellationToken)
    {
        if (!upsideDown)
        {
            var (text, confidence) = await RecognizeAsync(crop, false, cancellationToken).ConfigureAwait(false);
            return (text, confidence, false);
        }

        var both = await Task.WhenAll(RecognizeAsync(crop, true, cancellationToken), RecognizeAsync(crop, false, cancellationToken)).ConfigureAwait(false);
        return both[0].Confidence >= both[1].Confidence ? (both[0].Text, both[0].Confidence, true) : (both[1].Text, both[1].Confidence, false);
    }

    private async Task<(string Text, float Confidence)> RecognizeAsync(Crop crop, bool upsideDown, CancellationToken cancellationToken)
    {
        var batcher = _recBatchers[crop.Bucket];
        var buffer = ArrayPool<float>.Shared.Rent(batcher.InputLength);
        try
        {
            buffer.AsSpan(0, batcher.InputLength).Clear();
            TextCrop.WritePlanes(crop.Recognizer, buffer, _buckets[crop.Bucket], upsideDown);
            var steps = await batcher.InferAsync(buffer, cancellationToken).ConfigureAwait(false);
            return _decoder.Decode(steps, RecStride, SpaceThreshold);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <summary>One recogniser batch at <paramref name="width"/>; each time step leaves as (arg-max class, its probability, the space's probability).</summary>
    private void ExecuteRecognizer(int width, Memory<float> inputs, int count, Span<float> outputs)
    {
        var steps = width / 8;
        _recGate.Wait();
        try
        {
            using var tensor = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, inputs, [count, 3, TextCrop.Height, width]);
            using var results = _rec.Run(_runOptions, [_recNames[0]], [tensor], [_recNames[1]]);
            var shape = results[0].GetTensorTypeAndShape().Shape;
            if (shape.Length != 3 || shape[0] != count || shape[1] != steps || shape[2] != _decoder.ClassCount)
            {
                throw new InvalidOperationException(
                    $"The recogniser returned [{string.Join(", ", shape)}] for {count} crops {width} wide; expected [{count}, {steps}, {_decoder.ClassCount}].");
            }

            var data = results[0].GetTensorDataAsSpan<float>();
            var classes = _decoder.ClassCount;
            for (var i = 0; i < count * steps; i++)
            {
                var row = data.Slice(i * classes, classes);
                var best = TensorPrimitives.IndexOfMax(row);
                outputs[RecStride * i] = best;
                outputs[(RecStride * i) + 1] = row[best];
                outputs[(RecStride * i) + 2] = row[classes - 1];
            }
        }
        finally
        {
            _recGate.Release();
        }
    }

    private void ExecuteClassifier(Memory<float> inputs, int count, Span<float> outputs)
    {
        using var tensor = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, inputs, [count, 3, TextCrop.Height, ClassifierWidth]);
        using var results = _cls!.Run(_runOptions, [_clsNames[0]], [tensor], [_clsNames[1]]);
        var data = results[0].GetTensorDataAsSpan<float>();
        if (data.Length != outputs.Length)
        {
            throw new InvalidOperationException($"The angle classifier returned {data.Length} values for {count} crops; expected {outputs.Length}.");
        }

        data.CopyTo(outputs);
    }

    /// <summary>A prepared crop: scaled for the recogniser, and separately squeezed for the classifier when wider than it.</summary>
    private readonly record struct Crop(SKBitmap Recognizer, SKBitmap? Classifier, int Bucket) : IDisposable
    {
        public void Dispose()
        {
            Recognizer?.Dispose();
            Classifier?.Dispose();
        }
    }
}
