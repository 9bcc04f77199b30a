#!/usr/bin/env bash
# Writes compose/k8s/workers.yaml from the model repository (models/*/*/config.json): a worker
# Deployment and a KEDA ScaledObject per model version (tools/k8s/generate.mjs), then validates every
# manifest of compose/k8s/kustomization.yaml against the Kubernetes and KEDA schemas
# (tools/k8s/validate.mjs). Run it after adding, removing or changing a model, and commit the result;
# tests/IntegrationTests/DeploymentFilesTests.cs fails while the committed file is out of date.
#   scripts/gen-k8s.sh            regenerate and validate
#   scripts/gen-k8s.sh --check    only check that the committed file is current, and validate
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

npm_tools k8s "the Kubernetes manifests' generator and schema checks"
if [ "${1:-}" = --check ]; then
  node "$ROOT/tools/k8s/generate.mjs" --check "$ROOT/models"
else
  node "$ROOT/tools/k8s/generate.mjs" "$ROOT/models"
fi
node "$ROOT/tools/k8s/validate.mjs" "$ROOT/compose/k8s"
