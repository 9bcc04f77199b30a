using Async.Serving.Contracts;
using Async.Serving.Hosting;
using Prometheus;

namespace Async.Serving.Worker.Observability;

/// <summary>The worker's Prometheus metrics (served on Serving:Worker:MetricsPort; docs/observability.md).</summary>
internal static class WorkerMetrics
{
    private static readonly double[] SecondsBuckets = ServingMetrics.SecondsBuckets;

    public static readonly Counter Jobs = Metrics.CreateCounter(
        "serving_worker_jobs_total", "Jobs finished by this worker, by outcome.",
        new CounterConfiguration { LabelNames = ["pipeline", "model", "status"] });

    public static readonly Histogram QueueDelay = Metrics.CreateHistogram(
        "serving_job_queue_seconds", "Time a job waited from submit to the start of its execution.",
        new HistogramConfiguration { LabelNames = ["pipeline", "model"], Buckets = SecondsBuckets });

    public static readonly Histogram Execution = Metrics.CreateHistogram(
        "serving_job_execution_seconds", "Execution time of a job (decode, wait for a batch slot, inference).",
        new HistogramConfiguration { LabelNames = ["pipeline", "model"], Buckets = SecondsBuckets });

    public static readonly Gauge InFlight = Metrics.CreateGauge(
        "serving_jobs_in_flight", "Jobs being executed by this worker.",
        new GaugeConfiguration { LabelNames = ["pipeline", "model"] });

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

    /// <summary>
    /// Creates a served model's job series at 0 when it loads, so the queue, execution, in-flight
    /// and outcome series exist (and rates over them read 0) before its first job.
    /// </summary>
    public static void Initialise(string pipeline, string model)
    {
        QueueDelay.WithLabels(pipeline, model);
        Execution.WithLabels(pipeline, model);
        InFlight.WithLabels(pipeline, model);
        foreach (var status in new[] { JobStatuses.Succeeded, JobStatuses.Failed, JobStatuses.Cancelled })
        {
            Jobs.WithLabels(pipeline, model, status);
        }
    }
}
