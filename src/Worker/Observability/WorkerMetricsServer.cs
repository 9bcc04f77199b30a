using Async.Serving.Worker.Inference;
using Microsoft.Extensions.Options;
using Prometheus;

namespace Async.Serving.Worker.Observability;

/// <summary>Serves <c>/metrics</c> on Serving:Worker:MetricsHost:MetricsPort (loopback by default) unless the port is 0.</summary>
internal sealed class WorkerMetricsServer(IOptions<WorkerOptions> options) : IHostedService, IDisposable
{
    private KestrelMetricServer? _server;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.MetricsPort > 0)
        {
            _server = new KestrelMetricServer(o.MetricsHost, o.MetricsPort);
            _server.Start();
        }

        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is not null)
        {
            await _server.StopAsync().ConfigureAwait(false);
        }
    }

    public void Dispose() => _server?.Dispose();
}
