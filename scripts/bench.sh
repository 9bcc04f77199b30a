#!/usr/bin/env bash
# Runs the benchmark (bench/Benchmark, DESIGN.md section 5) against the real services on this
# machine: starts them if needed, builds, fetches the models, then starts its own API and one
# worker at a time on a temporary model repository (queues infer-bench-*), and writes
# artifacts/bench/summary.json. Extra arguments go to the benchmark, for example
#   scripts/bench.sh --resnet-jobs 600 --trivial-jobs 6000 --queued-jobs 10000 --concurrency 32
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

prepare
export SERVING_RABBIT_MGMT_PORT="$RABBIT_MGMT_PORT" SERVING_CONFIGURATION="$CONFIGURATION"

OUT="$ROOT/artifacts/bench"
mkdir -p "$OUT"
log "running the benchmark (about 2-3 minutes on 2 cores); output in $OUT"
dotnet "$ROOT/bench/Benchmark/bin/$CONFIGURATION/net10.0/Async.Serving.Benchmark.dll" --root "$ROOT" --out "$OUT" "$@" 2>&1 \
  | tee "$OUT/bench.log"
exit "${PIPESTATUS[0]}"
