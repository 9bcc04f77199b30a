#!/usr/bin/env bash
# Packs the GPU benchmark kit (docs/benchmarks.md, "GPU benchmark kit"): a self-contained linux-x64
# publish of bench/Benchmark (its --only device mode: ONNX Runtime alone at batch 1-256, then JPEG
# decode and preprocessing on all cores) with ResNet-18, as a gzipped tar cut into pieces of at most
# --piece-mib MiB (default 60), a SHA256SUMS of the pieces, and run.sh (scripts/gpu-kit-run.sh),
# which reassembles, checks and runs it on a host with no .NET SDK. Copy the output folder to the GPU
# host and run `bash run.sh` there.
#   scripts/gpu-kit.sh [--out DIR] [--piece-mib N]        (default out: artifacts/gpu-kit)
# models/resnet18/1/model.fp16.onnx, when present, travels too (FP16 figures); otherwise run.sh
# converts one on the host if its python3 has onnx and onnxconverter-common.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUT="$ROOT/artifacts/gpu-kit"
PIECE_MIB=60
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --piece-mib) PIECE_MIB="$2"; shift 2 ;;
    *) die "unknown argument $1 (--out DIR, --piece-mib N)" ;;
  esac
done
[[ "$PIECE_MIB" =~ ^[0-9]+$ ]] && [ "$PIECE_MIB" -ge 1 ] && [ "$PIECE_MIB" -le 60 ] || die "--piece-mib must be 1 to 60"
command -v dotnet >/dev/null || die "the .NET SDK (dotnet) is not on PATH"
MODEL="$MODELS/resnet18/1"
[ -s "$MODEL/model.onnx" ] || die "$MODEL/model.onnx is missing: run scripts/fetch-models.sh (or point SERVING_MODELS_DIR at a model repository)"

WORK="$STATE/gpu-kit"
KIT="$WORK/async-serving-gpu-kit"
rm -rf "$KIT" && mkdir -p "$KIT/models/resnet18/1" "$OUT"
log "publishing bench/Benchmark self-contained for linux-x64 (log: $LOGS/gpu-kit-publish.log)"
# Its own build folders (--artifacts-path), so this publish never rewrites the portable build's obj/
# (its restore for linux-x64 would, and a test run may be using that build); kept for the next publish.
dotnet publish "$ROOT/bench/Benchmark/Benchmark.csproj" -c Release -r linux-x64 --self-contained \
  --artifacts-path "$WORK/build" -o "$KIT/app" -nologo -v q >"$LOGS/gpu-kit-publish.log" 2>&1 \
  || { tail -30 "$LOGS/gpu-kit-publish.log" >&2; die "dotnet publish failed, see $LOGS/gpu-kit-publish.log"; }
[ -x "$KIT/app/Async.Serving.Benchmark" ] && [ -s "$KIT/app/libonnxruntime_providers_cuda.so" ] \
  || die "the publish lacks the app host or the CUDA provider (see $LOGS/gpu-kit-publish.log)"
cp "$MODEL/model.onnx" "$MODEL/config.json" "$KIT/models/resnet18/1/"
if [ -s "$MODEL/model.fp16.onnx" ]; then
  cp "$MODEL/model.fp16.onnx" "$KIT/models/resnet18/1/"
  log "packing the FP16 model too ($MODEL/model.fp16.onnx)"
fi

log "packing $(du -sh "$KIT" | cut -f1) into pieces of at most $PIECE_MIB MiB in $OUT"
rm -f "$OUT"/kit.tar.gz.part-* "$OUT/SHA256SUMS" "$OUT/kit.tar.gz.sha256" "$OUT/run.sh"
# gzip -1: the CUDA provider shrinks to about half at any level, and level 1 packs several times faster.
tar -C "$WORK" -cf - async-serving-gpu-kit | gzip -1 | split -b "${PIECE_MIB}M" -d -a 3 - "$OUT/kit.tar.gz.part-"
(cd "$OUT" && sha256sum kit.tar.gz.part-* >SHA256SUMS && cat kit.tar.gz.part-* | sha256sum | sed 's/-$/kit.tar.gz/' >kit.tar.gz.sha256)
cp "$ROOT/scripts/gpu-kit-run.sh" "$OUT/run.sh"
chmod +x "$OUT/run.sh"
rm -rf "$KIT"
pieces=$(wc -l <"$OUT/SHA256SUMS")
log "kit ready: $pieces pieces, $(du -ch "$OUT"/kit.tar.gz.part-* | tail -1 | cut -f1) in all, largest $(( $(stat -c %s "$OUT"/kit.tar.gz.part-* | sort -n | tail -1) / 1048576 )) MiB"
log "copy $OUT (run.sh, SHA256SUMS, kit.tar.gz.sha256, kit.tar.gz.part-*) to the GPU host and run: bash run.sh"
