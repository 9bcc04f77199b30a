using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Async.Serving.Api.Jobs;
using Async.Serving.Models;
using Async.Serving.Worker.Hosting;
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

    private static string K8sTools => Path.Combine(ServingFixture.RepoRoot, "tools", "k8s");

    /// <summary>The repository's own model configs (committed), from which compose/k8s/workers.yaml is generated.</summary>
    private static ModelRepository Repository => ModelRepository.Load(Path.Combine(ServingFixture.RepoRoot, "models"), requireWeights: false);

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

    [Fact]
    public async Task The_compose_cpu_profile_starts_every_service_and_one_worker_for_every_model()
    {
        var services = (YamlMappingNode)Load(await ComposeConfigAsync()).Single()["services"];
        var byName = services.Children.ToDictionary(c => Scalar(c.Key), c => (YamlMappingNode)c.Value);

        // `--profile X up` starts the services without profiles and those of profile X.
        List<string> Started(string profile) => [.. byName.Where(s => !s.Value.Children.ContainsKey("profiles")
            || ((YamlSequenceNode)s.Value["profiles"]).Select(Scalar).Contains(profile)).Select(s => s.Key)];
        static bool ReservesGpu(YamlMappingNode service) =>
            service.Children.TryGetValue("deploy", out var deploy)
            && ((YamlMappingNode)deploy).Children.TryGetValue("resources", out var resources)
            && ((YamlMappingNode)resources).Children.TryGetValue("reservations", out var reservations)
            && ((YamlMappingNode)reservations).Children.ContainsKey("devices");
        bool IsWorker(string name) => Scalar(byName[name]["image"]).StartsWith("async-serving-worker:", StringComparison.Ordinal);

        foreach (var (profile, gpu) in new[] { ("cpu", false), ("gpu", true) })
        {
            var started = Started(profile);
            foreach (var service in new[] { "rabbitmq", "redis", "postgres", "api" })
            {
                Assert.Contains(service, started);
            }

            var worker = Assert.Single(started, IsWorker);
            Assert.Equal(gpu, ReservesGpu(byName[worker]));
            if (!gpu)
            {
                Assert.All(started, s => Assert.False(ReservesGpu(byName[s]), $"{s} needs a GPU under --profile {profile}"));
            }

            // No Serving__Worker__Models__N: the worker serves every model in the repository, so every pipeline is consumed.
            var environment = ((YamlMappingNode)byName[worker]["environment"]).Children.Keys.Select(Scalar).ToList();
            Assert.DoesNotContain(environment, k => k.StartsWith("Serving__Worker__Models", StringComparison.Ordinal));
            Assert.Contains("Serving__Worker__ShutdownTimeout", environment);
            Assert.Contains(((YamlSequenceNode)byName[worker]["volumes"]).Select(Scalar), v => v.EndsWith(":/models:ro", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Every_model_in_the_repository_has_a_Kubernetes_worker_that_serves_it_and_scales_on_the_sum_of_its_priority_lanes()
    {
        var documents = await KustomizationDocumentsAsync();
        var deployments = documents.Where(d => Scalar(d["kind"]) == "Deployment" && WorkerContainer(d) is not null).ToList();
        var scaled = documents.Where(d => Scalar(d["kind"]) == "ScaledObject").ToList();
        var authentications = documents.Where(d => Scalar(d["kind"]) == "TriggerAuthentication").Select(d => Scalar(d["metadata"]["name"])).ToList();
        var models = Repository.All.ToList();
        Assert.NotEmpty(models);
        Assert.Contains(models, m => m.Config.Pipeline == "video.analyze");

        foreach (var model in models)
        {
            // The worker reads exactly the queues of the models it is told to serve (ModelHost.Select).
            var deployment = Assert.Single(deployments, d => ServedModels(d).SequenceEqual([model.Id]));
            var name = Scalar(deployment["metadata"]["name"]);
            var scaler = Assert.Single(scaled, s => Scalar(s["spec"]["scaleTargetRef"]["name"]) == name);
            var trigger = (YamlMappingNode)((YamlSequenceNode)scaler["spec"]["triggers"]).Single();
            var metadata = (YamlMappingNode)trigger["metadata"];
            Assert.Equal("rabbitmq", Scalar(trigger["type"]));
            // One trigger on the sum of the model's priority lanes (KEDA's HPA takes the max over triggers, not the sum).
            Assert.Equal("true", Scalar(metadata["useRegex"]));
            Assert.Equal("sum", Scalar(metadata["operation"]));
            var lanes = new System.Text.RegularExpressions.Regex(Scalar(metadata["queueName"]));
            Assert.All(model.LaneQueues, q => Assert.Matches(lanes, q));
            Assert.Equal(3, model.LaneQueues.Count);
            Assert.All(model.LaneQueues.SelectMany(q => new[] { q + "_error", q + "_skipped", q + "x" }), q => Assert.DoesNotMatch(lanes, q));
            Assert.All(models.Where(m => m != model).SelectMany(m => m.LaneQueues), q => Assert.DoesNotMatch(lanes, q));
            Assert.Equal("http", Scalar(metadata["protocol"]));                // reads ready + unacked, not ready only
            Assert.Equal("QueueLength", Scalar(metadata["mode"]));
            Assert.Equal("false", Scalar(metadata["excludeUnacknowledged"]));
            Assert.Equal(WorkerHostExtensions.ConcurrentJobs(model, new WorkerOptions()).ToString(CultureInfo.InvariantCulture), Scalar(metadata["value"]));
            Assert.Contains(Scalar(trigger["authenticationRef"]["name"]), authentications);
            Assert.False(deployment["spec"] is YamlMappingNode spec && spec.Children.ContainsKey("replicas"), $"{name}: replicas would fight KEDA's HPA");
        }

        Assert.Equal(models.Count, deployments.Count);   // no worker for a model that is gone
        Assert.Equal(models.Count, scaled.Count);

        // The triggers count messages: the API sends one job per message, so they count jobs.
        var settings = (YamlMappingNode)documents.Single(d => Scalar(d["kind"]) == "ConfigMap" && Scalar(d["metadata"]["name"]) == "serving-config")["data"];
        Assert.Equal("1", Scalar(settings["Serving__Limits__MaxJobsPerMessage"]));
    }

    [Fact]
    public async Task Every_Kubernetes_worker_is_scraped_on_its_metrics_port_and_sized_for_the_models_it_loads()
    {
        var repository = Repository;
        foreach (var deployment in (await KustomizationDocumentsAsync()).Where(d => Scalar(d["kind"]) == "Deployment" && WorkerContainer(d) is not null))
        {
            var name = Scalar(deployment["metadata"]["name"]);
            var pod = (YamlMappingNode)deployment["spec"]["template"];
            var container = WorkerContainer(deployment)!;
            var env = Env(container);
            var model = repository.Resolve(ServedModels(deployment).Single())!;
            var loaded = repository.Dependencies(model).Append(model).ToList();

            var port = Scalar(((YamlSequenceNode)container["ports"]).Cast<YamlMappingNode>().Single(p => Scalar(p["name"]) == "metrics")["containerPort"]);
            Assert.Equal(env.GetValueOrDefault("Serving__Worker__MetricsPort", new WorkerOptions().MetricsPort.ToString(CultureInfo.InvariantCulture)), port);
            Assert.Equal("0.0.0.0", env["Serving__Worker__MetricsHost"]);   // reachable by Prometheus and the kubelet
            var annotations = (YamlMappingNode)pod["metadata"]["annotations"];
            Assert.Equal("true", Scalar(annotations["prometheus.io/scrape"]));
            Assert.Equal(port, Scalar(annotations["prometheus.io/port"]));
            Assert.Equal("/metrics", Scalar(annotations["prometheus.io/path"]));

            var requests = (YamlMappingNode)container["resources"]["requests"];
            var limits = (YamlMappingNode)container["resources"]["limits"];
            Assert.True(Quantity(Scalar(requests["cpu"])) > 0, $"{name}: no CPU request");
            var memory = Quantity(Scalar(requests["memory"]));
            Assert.True(memory >= 1L << 30, $"{name}: requests less memory than a worker's measured peak plus the CUDA context (docs/deployment.md)");
            Assert.True(Quantity(Scalar(limits["memory"])) >= memory, $"{name}: memory limit below the request");
            if (loaded.Any(m => m.Config.Pipeline == "image.ocr"))
            {
                Assert.True(memory >= 2L << 30, $"{name} loads the OCR networks (peak RSS about 1 GiB on CPU) and requests {memory} bytes");
            }

            var gpu = loaded.Any(m => m.Config.ExecutionProvider == "cuda");
            Assert.Equal(gpu ? "1" : "", limits.Children.TryGetValue("nvidia.com/gpu", out var g) ? Scalar(g) : "");

            // A video worker keeps each running job's input in /tmp while ffmpeg reads it.
            if (model.Config.Video is { } video)
            {
                var tmp = ((YamlSequenceNode)container["volumeMounts"]).Cast<YamlMappingNode>().Single(m => Scalar(m["mountPath"]) == "/tmp");
                var volume = ((YamlSequenceNode)pod["spec"]["volumes"]).Cast<YamlMappingNode>().Single(v => Scalar(v["name"]) == Scalar(tmp["name"]));
                var room = Quantity(Scalar(volume["emptyDir"]["sizeLimit"]));
                Assert.True(room >= video.ConcurrentJobs * new JobLimitsOptions().MaxVideoBytes, $"{name}: /tmp holds {room} bytes");
                Assert.Equal(room, Quantity(Scalar(requests["ephemeral-storage"])));
            }

            // The kubelet's grace period outlasts the worker's own drain (HostOptions.ShutdownTimeout comes from it).
            var drain = TimeSpan.Parse(env["Serving__Worker__ShutdownTimeout"], CultureInfo.InvariantCulture);
            Assert.True(int.Parse(Scalar(pod["spec"]["terminationGracePeriodSeconds"]), CultureInfo.InvariantCulture) > drain.TotalSeconds, name);
        }
    }

    [Fact]
    public async Task The_Kubernetes_manifests_pass_the_schemas_and_match_the_model_repository()
    {
        var validate = await RunAsync("node", [Path.Combine(K8sTools, "validate.mjs"), K8sDir]);
        Assert.True(validate.ExitCode == 0, validate.ToString());
        Assert.Contains("ScaledObject/", validate.Output, StringComparison.Ordinal);
        Assert.Contains(" 0 invalid", validate.Output, StringComparison.Ordinal);

        var check = await RunAsync("node", [Path.Combine(K8sTools, "generate.mjs"), "--check", Path.Combine(ServingFixture.RepoRoot, "models"), Path.Combine(K8sDir, "workers.yaml")]);
        Assert.True(check.ExitCode == 0, check.ToString());

        var work = Directory.CreateTempSubdirectory("serving-k8s-");
        try
        {
            // A model added to the repository without regenerating: the check fails.
            var models = Path.Combine(work.FullName, "models");
            foreach (var config in Directory.EnumerateFiles(Path.Combine(ServingFixture.RepoRoot, "models"), "config.json", SearchOption.AllDirectories))
            {
                var target = Path.Combine(models, Path.GetRelativePath(Path.Combine(ServingFixture.RepoRoot, "models"), config));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(config, target);
            }

            Directory.CreateDirectory(Path.Combine(models, "resnet18", "2"));
            File.Copy(Path.Combine(models, "resnet18", "1", "config.json"), Path.Combine(models, "resnet18", "2", "config.json"));
            var stale = await RunAsync("node", [Path.Combine(K8sTools, "generate.mjs"), "--check", models, Path.Combine(K8sDir, "workers.yaml")]);
            Assert.True(stale.ExitCode != 0, stale.ToString());
            Assert.Contains("scripts/gen-k8s.sh", stale.Error, StringComparison.Ordinal);

            // A manifest the schemas refuse: a container without an image, a KEDA trigger value that is not a string.
            var broken = Path.Combine(work.FullName, "k8s");
            Directory.CreateDirectory(broken);
            await File.WriteAllTextAsync(Path.Combine(broken, "kustomization.yaml"), "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [bad.yaml]\n");
            await File.WriteAllTextAsync(Path.Combine(broken, "bad.yaml"), """
                apiVersion: keda.sh/v1alpha1
                kind: ScaledObject
                metadata: { name: w }
                spec:
                  scaleTargetRef: { name: w }
                  triggers: [{ type: rabbitmq, metadata: { value: 16 } }]
                """);
            var refused = await RunAsync("node", [Path.Combine(K8sTools, "validate.mjs"), broken]);
            Assert.True(refused.ExitCode != 0, refused.ToString());
            Assert.Contains("must be string", refused.Error, StringComparison.Ordinal);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task The_API_is_scraped_on_its_management_port_which_no_Service_exposes()
    {
        var documents = await KustomizationDocumentsAsync();
        var api = documents.Single(d => Scalar(d["kind"]) == "Deployment" && Scalar(d["metadata"]["name"]) == "api");
        var container = ((YamlSequenceNode)api["spec"]["template"]["spec"]["containers"]).Cast<YamlMappingNode>().Single();
        var env = Env(container);
        var ports = ((YamlSequenceNode)container["ports"]).Cast<YamlMappingNode>().ToDictionary(p => Scalar(p["name"]), p => Scalar(p["containerPort"]));
        Assert.Equal(env["Serving__Management__Port"], ports["management"]);
        Assert.Equal("0.0.0.0", env["Serving__Management__Host"]);   // reachable by Prometheus in the cluster
        Assert.NotEqual(ports["http"], ports["management"]);
        var annotations = (YamlMappingNode)api["spec"]["template"]["metadata"]["annotations"];
        Assert.Equal("true", Scalar(annotations["prometheus.io/scrape"]));
        Assert.Equal(ports["management"], Scalar(annotations["prometheus.io/port"]));
        Assert.Equal("/metrics", Scalar(annotations["prometheus.io/path"]));

        // The Service (what an Ingress publishes) forwards the public port only.
        var service = documents.Single(d => Scalar(d["kind"]) == "Service" && Scalar(d["metadata"]["name"]) == "api");
        Assert.All(((YamlSequenceNode)service["spec"]["ports"]).Cast<YamlMappingNode>(), p => Assert.Equal("http", Scalar(p["targetPort"])));

        // compose: the API's and the worker's metrics ports stay on the compose network, and Prometheus scrapes both.
        var compose = (YamlMappingNode)Load(await ComposeConfigAsync()).Single()["services"];
        var composeApi = (YamlMappingNode)compose["api"];
        var management = Scalar(composeApi["environment"]["Serving__Management__Port"]);
        Assert.DoesNotContain(((YamlSequenceNode)composeApi["ports"]).Select(Scalar), p => p.Contains(":" + management, StringComparison.Ordinal));
        var scrape = await File.ReadAllTextAsync(Path.Combine(ComposeDir, "monitoring", "prometheus.yml"));
        Assert.Contains($"api:{management}", scrape, StringComparison.Ordinal);
        Assert.Contains($"worker:{new WorkerOptions().MetricsPort.ToString(CultureInfo.InvariantCulture)}", scrape, StringComparison.Ordinal);
    }

    private static async Task<List<YamlMappingNode>> KustomizationDocumentsAsync()
    {
        var kustomization = Load(await File.ReadAllTextAsync(Path.Combine(K8sDir, "kustomization.yaml"))).Single();
        var documents = new List<YamlMappingNode>();
        foreach (var file in ((YamlSequenceNode)kustomization["resources"]).Select(Scalar))
        {
            documents.AddRange(Load(await File.ReadAllTextAsync(Path.Combine(K8sDir, file))));
        }

        return documents;
    }

    /// <summary>The container that runs the worker image, or null for another Deployment.</summary>
    private static YamlMappingNode? WorkerContainer(YamlMappingNode deployment) =>
        ((YamlSequenceNode)deployment["spec"]["template"]["spec"]["containers"]).Cast<YamlMappingNode>()
            .SingleOrDefault(c => Scalar(c["image"]).StartsWith("async-serving-worker", StringComparison.Ordinal));

    private static Dictionary<string, string> Env(YamlMappingNode container) =>
        ((YamlSequenceNode)container["env"]).Cast<YamlMappingNode>().ToDictionary(e => Scalar(e["name"]), e => e.Children.TryGetValue("value", out var v) ? Scalar(v) : "");

    /// <summary>Serving:Worker:Models as the worker binds it from Serving__Worker__Models__0, __1, ...</summary>
    private static List<string> ServedModels(YamlMappingNode deployment) =>
        [.. Env(WorkerContainer(deployment)!).Where(e => e.Key.StartsWith("Serving__Worker__Models__", StringComparison.Ordinal))
            .OrderBy(e => int.Parse(e.Key["Serving__Worker__Models__".Length..], CultureInfo.InvariantCulture)).Select(e => e.Value)];

    /// <summary>A Kubernetes quantity in bytes or cores: 2, 500m, 512Mi, 2Gi, 1G.</summary>
    private static double Quantity(string value)
    {
        var match = QuantityPattern().Match(value);
        Assert.True(match.Success, $"not a quantity: {value}");
        var number = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        return number * match.Groups[2].Value switch
        {
            "" => 1,
            "m" => 1e-3,
            "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "Ki" => 1L << 10,
            "Mi" => 1L << 20,
            "Gi" => 1L << 30,
            "Ti" => 1L << 40,
            var unit => throw new FormatException($"unit {unit} in {value}"),
        };
    }

    private static async Task<string> ComposeConfigAsync()
    {
        var result = await RunAsync("docker-compose", ["-f", Path.Combine(ComposeDir, "docker-compose.yml"), "config"]);
        Assert.True(result.ExitCode == 0, result.Error);
        return result.Output;
    }

    private static async Task<ProcessResult> RunAsync(string file, string[] arguments)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return new ProcessResult(process.ExitCode, await output, await error);
    }

    private sealed record ProcessResult(int ExitCode, string Output, string Error)
    {
        public override string ToString() => $"exit {ExitCode}\n{Output}\n{Error}";
    }

    private static List<YamlMappingNode> Load(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return stream.Documents.Select(d => d.RootNode).OfType<YamlMappingNode>().ToList();
    }

    private static YamlMappingNode Service(YamlMappingNode compose, string name) => (YamlMappingNode)compose["services"][name];

    private static string Scalar(YamlNode node) => ((YamlScalarNode)node).Value ?? "";

    [GeneratedRegex(@"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|Ki|Mi|Gi|Ti)?$")]
    private static partial Regex QuantityPattern();

    [GeneratedRegex(@"^\s*consumer_timeout\s*=\s*([0-9]+)\s*$", RegexOptions.Multiline)]
    private static partial Regex ConsumerTimeout();
}
