using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Async.Serving.Api.Jobs;
using Async.Serving.Worker.Inference;
using YamlDotNet.RepresentationModel;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The compose file cannot run here (no Docker engine), so it is validated by docker-compose itself;
/// the Kubernetes manifests (no cluster either) are parsed and their durability settings checked.
/// </summary>
public sealed partial class DeploymentFilesTests
{
    private static string ComposeDir => Path.Combine(ServingFixture.RepoRoot, "compose");

    private static string K8sDir => Path.Combine(ComposeDir, "k8s");

    /// <summary>The longest a job's message may stay unacknowledged while it runs: the largest timeout a job may have.</summary>
    private static long LongestJobMilliseconds =>
        1000L * Math.Max(new JobLimitsOptions().MaxTimeoutSeconds, new WorkerOptions().DefaultTimeoutSeconds);

    [Fact]
    public async Task The_compose_file_is_valid_and_declares_every_service_with_a_healthcheck()
    {
        var output = await ComposeConfigAsync();

        foreach (var service in new[] { "rabbitmq:", "redis:", "postgres:", "api:", "worker:" })
        {
            Assert.Contains("  " + service, output, StringComparison.Ordinal);
        }

        Assert.True(output.Split("healthcheck:").Length - 1 >= 5, "every service has a healthcheck");
        Assert.Contains("capabilities:", output, StringComparison.Ordinal); // the worker's GPU reservation
        Assert.DoesNotContain("0.0.0.0", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_compose_Redis_appends_every_write_to_its_volume_and_never_evicts()
    {
        var redis = Service(Load(await ComposeConfigAsync()).Single(), "redis");
        var command = ((YamlSequenceNode)redis["command"]).Select(Scalar).ToList();
        string Option(string name)
        {
            var at = command.IndexOf(name);
            Assert.True(at >= 0 && at + 1 < command.Count, $"redis-server {name} is not set: {string.Join(' ', command)}");
            return command[at + 1];
        }

        Assert.Equal("yes", Option("--appendonly"));
        Assert.Equal("everysec", Option("--appendfsync"));
        Assert.Equal("noeviction", Option("--maxmemory-policy"));
        Assert.NotEqual("0", Option("--maxmemory"));
        Assert.Matches("^[0-9]+(b|kb|mb|gb)?$", Option("--maxmemory").ToLowerInvariant());
        Assert.Contains(((YamlSequenceNode)redis["volumes"]).Select(Scalar), v => v.StartsWith("redis-data:/data", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Every_broker_configuration_lets_the_longest_job_run_within_consumer_timeout()
    {
        // compose: a file mounted into the image's conf.d
        var rabbit = Service(Load(await ComposeConfigAsync()).Single(), "rabbitmq");
        var mount = ((YamlSequenceNode)rabbit["volumes"]).Select(Scalar).Single(v => v.Contains(":/etc/rabbitmq/conf.d/", StringComparison.Ordinal));
        var composeConf = await File.ReadAllTextAsync(mount.Split(':')[0]);

        // Kubernetes: the RabbitMQ Cluster Operator's additionalConfig
        var cluster = Load(await File.ReadAllTextAsync(Path.Combine(K8sDir, "rabbitmq-cluster.yaml"))).Single();
        Assert.Equal("RabbitmqCluster", Scalar(cluster["kind"]));
        var k8sConf = Scalar(cluster["spec"]["rabbitmq"]["additionalConfig"]);

        // scripts/lib.sh: the rabbitmq.conf it writes
        var state = Directory.CreateTempSubdirectory("serving-state-");
        try
        {
            var script = await ScriptRunner.RunAsync("rabbit_conf", new Dictionary<string, string> { ["SERVING_STATE_DIR"] = state.FullName }, TimeSpan.FromSeconds(30));
            Assert.True(script.ExitCode == 0, script.ToString());

            foreach (var (where, conf) in new[] { ("compose", composeConf), ("k8s", k8sConf), ("lib.sh", script.Output) })
            {
                var match = ConsumerTimeout().Match(conf);
                Assert.True(match.Success, $"{where}: no consumer_timeout in\n{conf}");
                var timeout = long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
                Assert.True(timeout > LongestJobMilliseconds, $"{where}: consumer_timeout {timeout} ms does not exceed the longest job, {LongestJobMilliseconds} ms");
            }
        }
        finally
        {
            state.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task The_Kubernetes_manifests_parse_and_deploy_Redis_with_AOF_on_a_persistent_volume()
    {
        var kustomization = Load(await File.ReadAllTextAsync(Path.Combine(K8sDir, "kustomization.yaml"))).Single();
        var resources = ((YamlSequenceNode)kustomization["resources"]).Select(Scalar).ToList();
        Assert.Contains("redis.yaml", resources);
        var documents = new List<YamlMappingNode>();
        foreach (var file in resources)
        {
            var parsed = Load(await File.ReadAllTextAsync(Path.Combine(K8sDir, file)));
            Assert.All(parsed, d => Assert.False(string.IsNullOrEmpty(Scalar(d["kind"])), $"{file}: a document without kind"));
            documents.AddRange(parsed);
        }

        YamlMappingNode Find(string kind, string name) =>
            documents.Single(d => Scalar(d["kind"]) == kind && Scalar(d["metadata"]["name"]) == name);

        var conf = Scalar(Find("ConfigMap", "redis-config")["data"]["redis.conf"]).Split('\n').Select(l => l.Trim()).ToList();
        Assert.Contains("appendonly yes", conf);
        Assert.Contains("appendfsync everysec", conf);
        Assert.Contains("maxmemory-policy noeviction", conf);
        Assert.Contains(conf, l => Regex.IsMatch(l, "^maxmemory [1-9][0-9]*(b|kb|mb|gb)?$", RegexOptions.IgnoreCase));

        var redis = Find("StatefulSet", "redis");
        var claim = (YamlMappingNode)((YamlSequenceNode)redis["spec"]["volumeClaimTemplates"]).Single();
        var container = (YamlMappingNode)((YamlSequenceNode)redis["spec"]["template"]["spec"]["containers"]).Single();
        var mounts = ((YamlSequenceNode)container["volumeMounts"]).Cast<YamlMappingNode>().ToList();
        Assert.Contains(mounts, m => Scalar(m["mountPath"]) == "/data" && Scalar(m["name"]) == Scalar(claim["metadata"]["name"]));
        Assert.Contains("redis.conf", string.Join(' ', ((YamlSequenceNode)container["command"]).Select(Scalar)), StringComparison.Ordinal);

        // The API and the workers find it where the example secret points: Service redis in the kustomization's namespace.
        Assert.Equal("6379", Scalar(((YamlSequenceNode)Find("Service", "redis")["spec"]["ports"]).Single()["port"]));
        var connection = Scalar(Find("Secret", "serving-secrets")["stringData"]["ConnectionStrings__Redis"]);
        Assert.StartsWith($"redis.{Scalar(kustomization["namespace"])}.svc.cluster.local:6379,", connection, StringComparison.Ordinal);
        Assert.NotNull(Find("Secret", "serving-redis")["stringData"]["password"]);
    }

    private static async Task<string> ComposeConfigAsync()
    {
        var start = new ProcessStartInfo("docker-compose", ["-f", Path.Combine(ComposeDir, "docker-compose.yml"), "config"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(process.ExitCode == 0, await error);
        return await output;
    }

    private static List<YamlMappingNode> Load(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return stream.Documents.Select(d => d.RootNode).OfType<YamlMappingNode>().ToList();
    }

    private static YamlMappingNode Service(YamlMappingNode compose, string name) => (YamlMappingNode)compose["services"][name];

    private static string Scalar(YamlNode node) => ((YamlScalarNode)node).Value ?? "";

    [GeneratedRegex(@"^\s*consumer_timeout\s*=\s*([0-9]+)\s*$", RegexOptions.Multiline)]
    private static partial Regex ConsumerTimeout();
}
