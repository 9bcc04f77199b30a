using Async.Serving.Hosting;
using Async.Serving.Worker.Hosting;

namespace Async.Serving.Worker;

// An explicit entry class, so the tests that host both the API and the worker see one `Program`.
internal static class WorkerProgram
{
    private static void Main(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(args);
        builder.AddServingDefaults();
        builder.AddServingTelemetry("async-serving-worker");
        builder.AddInference();
        builder.AddWorkerBus();
        builder.Build().Run();
    }
}
