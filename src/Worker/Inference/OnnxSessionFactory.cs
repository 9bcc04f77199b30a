using Microsoft.ML.OnnxRuntime;

namespace Async.Serving.Worker.Inference;

/// <summary>
/// Creates ONNX Runtime sessions: CUDA when the model prefers it and the provider loads, else CPU.
/// ONNX Runtime lists CUDA as available even where its libraries cannot load, so the only honest
/// test is to try; the outcome is remembered, so the choice is made (and logged) once per process.
/// </summary>
internal sealed partial class OnnxSessionFactory(WorkerOptions options, ILogger<OnnxSessionFactory> logger)
{
    private readonly Lock _gate = new();
    private bool? _cudaWorks;
    private int _cpuLogged;

    public (InferenceSession Session, string Provider) Create(string modelPath, string preferredProvider)
    {
        if (preferredProvider == "cuda")
        {
            lock (_gate)
            {
                if (_cudaWorks != false)
                {
                    try
                    {
                        var session = new InferenceSession(modelPath, CreateOptions(cuda: true));
                        if (_cudaWorks is null)
                        {
                            LogProvider(logger, "CUDA", $"device {options.CudaDeviceId}");
                        }

                        _cudaWorks = true;
                        return (session, "cuda");
                    }
                    catch (Exception ex) when (ex is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
                    {
                        _cudaWorks = false;
                        LogCudaUnavailable(logger, ex.Message);
                    }
                }
            }
        }

        var cpu = new InferenceSession(modelPath, CreateOptions(cuda: false));
        if (Interlocked.Exchange(ref _cpuLogged, 1) == 0)
        {
            LogProvider(logger, "CPU", options.IntraOpThreads == 0 ? "intra-op threads: ONNX Runtime default" : $"intra-op threads: {options.IntraOpThreads}");
        }

        return (cpu, "cpu");
    }

    private SessionOptions CreateOptions(bool cuda)
    {
        var so = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = options.IntraOpThreads,
        };
        so.AddSessionConfigEntry("session.intra_op.allow_spinning", options.AllowSpinning ? "1" : "0");
        if (cuda)
        {
            try
            {
                so.AppendExecutionProvider_CUDA(options.CudaDeviceId);
            }
            catch
            {
                so.Dispose();
                throw;
            }
        }

        return so;
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Execution provider: {Provider} ({Detail})")]
    private static partial void LogProvider(ILogger logger, string provider, string detail);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "CUDA execution provider unavailable, using CPU: {Reason}")]
    private static partial void LogCudaUnavailable(ILogger logger, string reason);
}
