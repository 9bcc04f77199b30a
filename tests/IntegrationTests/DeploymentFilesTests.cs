using System.Diagnostics;

namespace Async.Serving.IntegrationTests;

/// <summary>The compose file cannot run here (no Docker engine), so it is validated by docker-compose itself.</summary>
public sealed class DeploymentFilesTests
{
    [Fact]
    public async Task The_compose_file_is_valid_and_declares_every_service_with_a_healthcheck()
    {
        var start = new ProcessStartInfo("docker-compose", ["-f", Path.Combine(ServingFixture.RepoRoot, "compose", "docker-compose.yml"), "config"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(process.ExitCode == 0, error);
        foreach (var service in new[] { "rabbitmq:", "redis:", "postgres:", "api:", "worker:" })
        {
            Assert.Contains("  " + service, output, StringComparison.Ordinal);
        }

        Assert.True(output.Split("healthcheck:").Length - 1 >= 5, "every service has a healthcheck");
        Assert.Contains("capabilities:", output, StringComparison.Ordinal); // the worker's GPU reservation
        Assert.DoesNotContain("0.0.0.0", output, StringComparison.Ordinal);
    }
}
