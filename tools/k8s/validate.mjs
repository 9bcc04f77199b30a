// Validates every manifest a kustomization lists against the Kubernetes API schemas
// (npm kubernetes-models) and KEDA's CRD schemas (npm @kubernetes-models/keda). A document whose
// apiVersion/kind has no schema here fails too: nothing is applied unchecked.
//
//   node tools/k8s/validate.mjs [kustomization-dir]      (default compose/k8s)
//
// Prints one line per document and exits 1 on the first file with an invalid document.
import { readFileSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dir = resolve(process.argv[2] ?? join(root, "compose", "k8s"));

/** The module that holds the model of apiVersion/kind: core group "v1" -> kubernetes-models/v1/Kind. */
function modelModule(apiVersion, kind) {
  if (/^keda\.sh\//.test(apiVersion) || /^eventing\.keda\.sh\//.test(apiVersion)) {
    return `@kubernetes-models/keda/${apiVersion}/${kind}`;
  }
  return `kubernetes-models/${apiVersion}/${kind}`;
}

function load(file) {
  const documents = parseAllDocuments(readFileSync(file, "utf8"));
  for (const d of documents) {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0].message}`);
  }
  return documents.map((d) => d.toJS()).filter((d) => d !== null && d !== undefined);
}

const kustomization = load(join(dir, "kustomization.yaml"))[0];
if (kustomization?.kind !== "Kustomization" || !Array.isArray(kustomization.resources)) {
  console.error(`${dir}/kustomization.yaml: not a Kustomization with resources`);
  process.exit(1);
}

let failed = 0;
let checked = 0;
for (const resource of kustomization.resources) {
  const file = join(dir, resource);
  let documents;
  try {
    documents = load(file);
  } catch (e) {
    console.error(`INVALID ${resource}: ${e.message}`);
    failed++;
    continue;
  }
  for (const doc of documents) {
    const what = `${resource}: ${doc.kind ?? "?"}/${doc.metadata?.name ?? "?"}`;
    if (typeof doc.apiVersion !== "string" || typeof doc.kind !== "string") {
      console.error(`INVALID ${what}: no apiVersion or kind`);
      failed++;
      continue;
    }
    let Model;
    try {
      Model = (await import(modelModule(doc.apiVersion, doc.kind)))[doc.kind];
    } catch {
      Model = undefined;
    }
    if (typeof Model !== "function") {
      console.error(`INVALID ${what}: no schema for ${doc.apiVersion} ${doc.kind}`);
      failed++;
      continue;
    }
    try {
      new Model(doc).validate();
      if (!doc.metadata?.name) throw new Error("metadata.name is missing");
      console.log(`valid   ${what} (${doc.apiVersion})`);
      checked++;
    } catch (e) {
      console.error(`INVALID ${what}: ${e.message}`);
      failed++;
    }
  }
}
console.log(`${checked} valid, ${failed} invalid`);
process.exit(failed === 0 && checked > 0 ? 0 : 1);
