// Writes compose/k8s/workers.yaml from the model repository: for every models/<name>/<version>/config.json
// one worker Deployment that serves that model only (Serving__Worker__Models__0=<name>@<version>) and a
// KEDA ScaledObject on the sum of the model's priority lanes: infer-<name>-<version> (ModelEntry.QueueName,
// the normal lane) and its .high and .low lanes (JobQueues.Lanes), matched by one anchored regex.
//
//   node tools/k8s/generate.mjs [models-dir] [output]            (scripts/gen-k8s.sh)
//   node tools/k8s/generate.mjs --check [models-dir] [output]    exit 1 when the committed file differs
//
// Sizing, per pipeline (docs/deployment.md, "Worker sizing"): memory from the workers' measured peak
// RSS in docs/benchmarks.md plus room for the CUDA context; CPU from how many decodes one worker runs
// at once; /tmp for the videos a video worker holds on disk. The KEDA target per replica is what one
// worker keeps in flight on the queue (WorkerHostExtensions.ConcurrentJobs).
import { readFileSync, readdirSync, existsSync, writeFileSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const args = process.argv.slice(2);
const check = args[0] === "--check";
if (check) args.shift();
const modelsDir = resolve(args[0] ?? join(root, "models"));
const output = resolve(args[1] ?? join(root, "compose", "k8s", "workers.yaml"));

// Serving:Worker:PrefetchBatches default (WorkerOptions): image batches a worker prefetches per queue.
const PREFETCH_BATCHES = 2;
// Serving:Limits:MaxVideoBytes default (JobLimitsOptions): a video job's input on the worker's /tmp.
const MAX_VIDEO_MIB = 100;
const METRICS_PORT = 9464;
const SHUTDOWN_SECONDS = 100;

/** A TimeSpan as .NET configuration reads it: hh:mm:ss. */
const timeSpan = (seconds) => new Date(seconds * 1000).toISOString().substring(11, 19);

/** config.json allows // comments and trailing commas (ModelConfigJsonContext). */
function parseConfig(text) {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === "\\") out += text[++i];
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
      out += c;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else {
      out += c;
    }
  }
  return JSON.parse(out.replace(/,(\s*[}\]])/g, "$1"));
}

function loadRepository(dir) {
  const models = [];
  for (const name of readdirSync(dir).sort()) {
    if (!existsSync(join(dir, name)) || name.startsWith(".")) continue;
    let versions;
    try { versions = readdirSync(join(dir, name)).sort(); } catch { continue; }
    for (const version of versions) {
      const path = join(dir, name, version, "config.json");
      if (!existsSync(path)) continue;
      models.push({ name, version, id: `${name}@${version}`, queue: `infer-${name}-${version}`.toLowerCase(), config: parseConfig(readFileSync(path, "utf8")) });
    }
  }
  return models;
}

function resolveRef(models, ref) {
  const [name, version] = ref.split("@");
  const matching = models.filter((m) => m.name === name && (version === undefined || m.version === version));
  const found = version === undefined
    ? matching.sort((a, b) => Number(a.version) - Number(b.version) || a.version.localeCompare(b.version)).at(-1)
    : matching[0];
  if (!found) throw new Error(`${ref} is not in the model repository ${modelsDir}`);
  return found;
}

/** The image models a video model loads beside it (ModelRepository.Dependencies). */
function dependencies(models, m) {
  const v = m.config.video;
  return v ? [v.embedding_model, v.ocr_model].filter((r) => r).map((r) => resolveRef(models, r)) : [];
}

/** The model's priority lanes as one anchored regex (JobQueues.Lane): normal, .high, .low; never its _error queues. */
// Queue names hold only a-z, 0-9, '-' and '_' (ModelRepository's name rule): nothing to escape.
const lanesRegex = (queue) => `^${queue}(\\.high|\\.low)?$`;

/** Jobs one worker runs at once for the model, over all its lanes (WorkerHostExtensions.ConcurrentJobs). */
function inFlight(m) {
  const c = m.config;
  if (c.video) return c.video.concurrent_jobs ?? 2;
  if (c.ocr) return c.ocr.concurrent_jobs ?? 4;
  return (c.max_batch_size ?? 8) * (c.instances ?? 1) * PREFETCH_BATCHES;
}

/**
 * Requests and limits per pipeline. Memory: measured peak RSS on the CPU execution provider
 * (docs/benchmarks.md: ResNet-18 454-477 MiB, OCR 958-967 MiB, video with OCR 814-838 MiB) plus
 * about 0.5 GiB host memory for the CUDA context and cuDNN, rounded up; the limit leaves as much
 * again for the largest inputs. CPU: decoding and pre/post-processing run on the CPU while the
 * GPU runs the networks: two cores for image batches, one per two concurrent OCR jobs, one per
 * concurrent video job (ffmpeg) plus one for the batches.
 */
function resources(models, m) {
  const c = m.config;
  const gpu = [m, ...dependencies(models, m)].some((e) => (e.config.execution_provider ?? "cuda") === "cuda");
  let cpu, memory, limit, tmp;
  switch (c.pipeline) {
    case "image.embed":
      cpu = 2; memory = "1Gi"; limit = "2Gi";
      break;
    case "image.ocr":
      cpu = Math.max(2, Math.ceil(inFlight(m) / 2)); memory = "2Gi"; limit = "3Gi";
      break;
    case "video.analyze": {
      cpu = inFlight(m) + 1; memory = "2Gi"; limit = "3Gi";
      // Each running video job keeps its input in /tmp/async-serving-video while ffmpeg reads it.
      tmp = `${Math.ceil((inFlight(m) * MAX_VIDEO_MIB * 2) / 256) * 256}Mi`;
      break;
    }
    default:
      throw new Error(`${m.id}: unknown pipeline ${c.pipeline}`);
  }
  const requests = { cpu: String(cpu), memory };
  const limits = { memory: limit };
  if (tmp) {
    requests["ephemeral-storage"] = tmp;
    limits["ephemeral-storage"] = tmp;
  }
  if (gpu) limits["nvidia.com/gpu"] = 1;
  return { gpu, tmp, resources: { requests, limits } };
}

function worker(models, m) {
  const name = `worker-${m.name}-${m.version}`.toLowerCase();
  const labels = {
    "app.kubernetes.io/name": "worker",
    "app.kubernetes.io/instance": name,
    "app.kubernetes.io/component": m.config.pipeline,
    "app.kubernetes.io/part-of": "async-serving",
  };
  const sized = resources(models, m);
  // The blob store (docs/blobs.md): large inputs written by the API, large outputs written here.
  const volumeMounts = [{ name: "models", mountPath: "/models", readOnly: true }, { name: "blobs", mountPath: "/var/lib/async-serving/blobs" }];
  const volumes = [
    { name: "models", persistentVolumeClaim: { claimName: "serving-models", readOnly: true } },
    { name: "blobs", persistentVolumeClaim: { claimName: "serving-blobs" } },
  ];
  if (sized.tmp) {
    volumeMounts.push({ name: "tmp", mountPath: "/tmp" });
    volumes.push({ name: "tmp", emptyDir: { sizeLimit: sized.tmp } });
  }
  const deployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, labels },
    spec: {
      selector: { matchLabels: { "app.kubernetes.io/instance": name } },
      template: {
        metadata: {
          labels,
          annotations: {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": String(METRICS_PORT),
            "prometheus.io/path": "/metrics",
          },
        },
        spec: {
          terminationGracePeriodSeconds: SHUTDOWN_SECONDS + 20,
          securityContext: { runAsNonRoot: true, runAsUser: 1654, runAsGroup: 1654, fsGroup: 1654 },
          ...(sized.gpu ? { tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }] } : {}),
          containers: [{
            name: "worker",
            image: "async-serving-worker",
            env: [
              { name: "Serving__Worker__Models__0", value: m.id },
              { name: "Serving__Worker__CudaDeviceId", value: "0" },
              { name: "Serving__Worker__ShutdownTimeout", value: timeSpan(SHUTDOWN_SECONDS) },
              { name: "Serving__Worker__MetricsHost", value: "0.0.0.0" },
              { name: "Serving__Worker__MetricsPort", value: String(METRICS_PORT) },
              { name: "Serving__Models__RequireWeights", value: "true" },
            ],
            envFrom: [{ configMapRef: { name: "serving-config" } }, { secretRef: { name: "serving-secrets" } }],
            ports: [{ name: "metrics", containerPort: METRICS_PORT }],
            startupProbe: { httpGet: { path: "/healthz", port: "metrics" }, periodSeconds: 5, failureThreshold: 60 },
            livenessProbe: { httpGet: { path: "/healthz", port: "metrics" }, periodSeconds: 15, timeoutSeconds: 3 },
            readinessProbe: { httpGet: { path: "/readyz", port: "metrics" }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
            resources: sized.resources,
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
            volumeMounts,
          }],
          volumes,
        },
      },
    },
  };
  const scaledObject = {
    apiVersion: "keda.sh/v1alpha1",
    kind: "ScaledObject",
    metadata: { name, labels: { "app.kubernetes.io/instance": name, "app.kubernetes.io/part-of": "async-serving" } },
    spec: {
      scaleTargetRef: { name },
      pollingInterval: 15,
      cooldownPeriod: 300,
      minReplicaCount: 1,
      maxReplicaCount: 8,
      advanced: {
        horizontalPodAutoscalerConfig: {
          behavior: { scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: "Pods", value: 1, periodSeconds: 60 }] } },
        },
      },
      triggers: [{
        type: "rabbitmq",
        metadata: {
          protocol: "http",
          mode: "QueueLength",
          value: String(inFlight(m)),
          activationValue: "0",
          queueName: lanesRegex(m.queue),
          useRegex: "true",
          operation: "sum",
          vhostName: "/",
          excludeUnacknowledged: "false",
        },
        authenticationRef: { name: "serving-rabbitmq-management" },
      }],
    },
  };
  return [deployment, scaledObject];
}

const HEADER = `# GENERATED by scripts/gen-k8s.sh from models/*/*/config.json: do not edit; change the generator
# (tools/k8s/generate.mjs) or the model repository and run the script again. The tests fail when
# this file and the repository disagree.
#
# One worker Deployment per model version, serving only that model (a video worker loads the image
# models its config names beside it, in the same process), and a KEDA ScaledObject on the model's
# own queues: the sum of its priority lanes infer-<name>-<version>(.high|.low) (useRegex, operation
# sum; docs/priorities.md). Sizing: docs/deployment.md, "Worker sizing".
#
# KEDA PITFALL: the backlog must count unacknowledged (in-flight) messages too. A busy worker holds
# its prefetched and executing messages as unacked; with protocol amqp the rabbitmq scaler sees only
# ready messages, reads ~0 under steady load, scales busy workers down, and their messages are
# redone. Hence protocol: http + mode: QueueLength (messages = ready + unacknowledged) and
# excludeUnacknowledged: "false". value = the jobs one worker runs at once, over all lanes.
# No replicas in the Deployments: KEDA's HPA owns the count.
`;

function render(models) {
  const documents = models.flatMap((m) => worker(models, m));
  return HEADER + documents.map((d) => "---\n" + stringify(d, { lineWidth: 0, aliasDuplicateObjects: false, version: "1.1" })).join("");
}

const models = loadRepository(modelsDir);
if (models.length === 0) {
  console.error(`no models/<name>/<version>/config.json under ${modelsDir}`);
  process.exit(1);
}
const text = render(models);
if (check) {
  const current = existsSync(output) ? readFileSync(output, "utf8") : "";
  if (current !== text) {
    console.error(`${output} does not match the model repository ${modelsDir}: run scripts/gen-k8s.sh and commit the result.`);
    process.exit(1);
  }
  console.log(`${output}: matches ${models.map((m) => m.id).join(", ")}`);
} else {
  writeFileSync(output, text);
  console.log(`${output}: workers for ${models.map((m) => m.id).join(", ")}`);
}
