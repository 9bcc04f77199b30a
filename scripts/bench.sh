#!/usr/bin/env bash
# Runs the benchmark (bench/Benchmark, DESIGN.md section 5) against the real services on this
# machine: starts them if needed, builds, fetches the models, then starts its own API and one
# worker at a time on a temporary model repository (queues infer-bench-*), and writes
# artifacts/bench/summary.json. Extra arguments go to the benchmark, for example
#   scripts/bench.sh --resnet-jobs 600 --trivial-jobs 6000 --queued-jobs 10000 --concurrency 32
# and for the OCR and video steps (0 jobs skips a step):
#   --ocr-jobs 48      image.ocr jobs of printed pages (bench-ppocr@4, from models/ppocr/4)
#   --video-jobs 4     video.analyze jobs without OCR (bench-video@1: frames through bench-resnet18@1)
#   --video-fps 10     their params.sample_fps (one more video job, with OCR at 2 fps, always follows)
#   --priority-jobs 400  each backlog of the priorities step: 70 % low, 20 % normal, 10 % high, then all normal
#   --only priorities    run only the priorities step (docs/benchmarks.md, "Priorities")
#   --blob-videos 20     videos of 50-100 MiB queued by the large-input step (0 skips it)
#   --only blobs         run only that step: Redis bytes per queued large video (docs/blobs.md)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

prepare
export SERVING_RABBIT_MGMT_PORT="$RABBIT_MGMT_PORT" SERVING_CONFIGURATION="$CONFIGURATION"

OUT="$ROOT/artifacts/bench"
mkdir -p "$OUT"
log "running the benchmark (about 4-5 minutes on 2 cores); output in $OUT"
dotnet "$ROOT/bench/Benchmark/bin/$CONFIGURATION/net10.0/Async.Serving.Benchmark.dll" --root "$ROOT" --out "$OUT" "$@" 2>&1 \
  | tee "$OUT/bench.log"
exit "${PIPESTATUS[0]}"
