using Prometheus;

namespace Async.Serving.Worker.Observability;

/// <summary>The worker's Prometheus metrics (served on Serving:Worker:MetricsPort).</summary>
internal static class WorkerMetrics
{
    private static readonly double[] SecondsBuckets = Histogram.ExponentialBuckets(0.001, 2, 16);

    public static readonly Counter Jobs = Metrics.CreateCounter(
        "serving_worker_jobs_total", "Jobs finished by this worker, by outcome.",
        new CounterConfiguration { LabelNames = ["pipeline", "model", "status"] });

    public static readonly Histogram QueueDelay = Metrics.CreateHistogram(
        "serving_job_queue_seconds", "Time from submit to start of execution.",
        new HistogramConfiguration { LabelNames = ["model"], Buckets = SecondsBuckets });

    public static readonly Histogram Execution = Metrics.CreateHistogram(
        "serving_job_execution_seconds", "Execution time of a job (decode, wait for a batch slot, inference).",
        new HistogramConfiguration { LabelNames = ["pipeline", "model"], Buckets = SecondsBuckets });

    public static readonly Gauge InFlight = Metrics.CreateGauge(
        "serving_jobs_in_flight", "Jobs being executed by this worker.",
        new GaugeConfiguration { LabelNames = ["model"] });

    public static readonly Histogram BatchSize = Metrics.CreateHistogram(
        "serving_batch_size", "Items per executed batch.",
        new HistogramConfiguration { LabelNames = ["model"], Buckets = [1, 2, 4, 8, 16, 32, 64, 128] });

    public static readonly Histogram OcrDetectionBatchSize = Metrics.CreateHistogram(
        "serving_ocr_detection_batch_size", "Images per run of an OCR model's text detector (images of every job, grouped by size).",
        new HistogramConfiguration { LabelNames = ["model"], Buckets = [1, 2, 4, 8, 16, 32, 64] });

    public static readonly Histogram BatchInference = Metrics.CreateHistogram(
        "serving_batch_inference_seconds", "ONNX Runtime time per batch.",
        new HistogramConfiguration { LabelNames = ["model"], Buckets = SecondsBuckets });

    public static readonly Gauge ModelLoad = Metrics.CreateGauge(
        "serving_model_load_seconds", "Time to load a model (session creation), by provider.",
        new GaugeConfiguration { LabelNames = ["model", "provider"] });
}
