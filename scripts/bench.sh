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
#   --baseline-jobs 200  requests per system at 1, 8 and 32 clients in the naive-baseline step (0 skips it)
#   --only baseline      run only the naive-baseline step: artifacts/bench/baseline.json
#   --only device        ONNX Runtime alone at batch 1-256 and decode on all cores, no services (scripts/gpu-kit.sh packs it)
#   --only orchestration run only step 3 (artifacts/bench/orchestration.json); with --trace-seconds S
#                        dotnet-trace (tool manifest .config/dotnet-tools.json) samples the API and the
#                        worker for S seconds of the load (docs/benchmarks.md, "Orchestration: where the CPU goes")
#   --warm-up-jobs 20000 trivial jobs before step 3's timed load (JIT tiering takes that long on 2 cores)
#   --resnet-warm-up-jobs 1000  ResNet jobs before steps 2 and 4 (the same reason)
#   --only preprocess    CPU per image of preprocessing before and now, and the in-process limit with
#                        decode beside ONNX Runtime alone (docs/benchmarks.md, "Preprocessing"); no services used
#   --blob-videos 20     videos of 50-100 MiB queued by the large-input step (0 skips it)
#   --blob-backlog 3200  small jobs queued before those videos (well over 128 per shard: every index a skip list)
#   --only blobs         run only that step: Redis bytes per queued large video (docs/blobs.md)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

prepare
dotnet tool restore --tool-manifest "$ROOT/.config/dotnet-tools.json" >&2 || die "dotnet tool restore failed"
fetch_test_photos
export SERVING_RABBIT_MGMT_PORT="$RABBIT_MGMT_PORT" SERVING_CONFIGURATION="$CONFIGURATION"
# The load client only (the benchmark takes it out of the API's and worker's environment):
# socket completions on the socket threads, fewer hand-offs in the load generator (docs/benchmarks.md).
export DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1

OUT="$ROOT/artifacts/bench"
mkdir -p "$OUT"
log "running the benchmark (about 4-5 minutes on 2 cores); output in $OUT"
dotnet "$ROOT/bench/Benchmark/bin/$CONFIGURATION/net10.0/Async.Serving.Benchmark.dll" --root "$ROOT" --out "$OUT" "$@" 2>&1 \
  | tee "$OUT/bench.log"
exit "${PIPESTATUS[0]}"
