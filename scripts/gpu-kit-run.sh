#!/usr/bin/env bash
# The GPU benchmark kit's run script (made by scripts/gpu-kit.sh, shipped beside its pieces as run.sh).
# On the GPU host, which needs bash, coreutils, tar and gzip, and no .NET: checks every piece against
# SHA256SUMS, reassembles and unpacks the kit, points the loader at the CUDA 13 libraries that the
# host's Python environment holds through pip packages (nvidia-cublas, nvidia-cudnn-cu13,
# nvidia-cuda-runtime, nvidia-curand), makes an FP16 ResNet-18 when python3 can convert one, and runs
# the device benchmark: ONNX Runtime at batch 1, 8, 32, 64, 128 and 256 (img/s and the gain over
# batch 1), FP32 and FP16, then JPEG decode and preprocessing img/s on all CPU cores. When CUDA does
# not load it runs on CPU and says so. Figures go to results/device.json and results/run.log.
#   bash run.sh [--device-batches 1,8,32,64,128,256] [--device-seconds 3] [--decode-images 32]
# Environment: GPU_KIT_DIR (where to unpack; default ./unpacked), GPU_KIT_PYTHON (default python3),
# CUDA_LIBRARY_DIRS (more folders for the loader, colon-separated), GPU_KIT_FP16=0 (no conversion).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
UNPACK="${GPU_KIT_DIR:-$HERE/unpacked}"
RESULTS="$HERE/results"
PYTHON="${GPU_KIT_PYTHON:-python3}"
started=$SECONDS
say() { printf '[gpu-kit] %s\n' "$*"; }
fail() { say "error: $*" >&2; exit 2; }

cd "$HERE"
[ -s SHA256SUMS ] || fail "SHA256SUMS is missing beside run.sh: copy the whole kit folder"
pieces=$(awk '{ print $2 }' SHA256SUMS)
count=$(wc -l <SHA256SUMS)
missing=$(for p in $pieces; do [ -f "$p" ] || printf '%s ' "$p"; done)
[ -z "$missing" ] || fail "missing pieces: $missing(expected $count)"
sha256sum --quiet -c SHA256SUMS || fail "a piece does not match SHA256SUMS (damaged in transfer): copy it again"
if [ -s kit.tar.gz.sha256 ]; then
  [ "$(cat $pieces | sha256sum | cut -d' ' -f1)" = "$(cut -d' ' -f1 kit.tar.gz.sha256)" ] || fail "the reassembled archive does not match kit.tar.gz.sha256"
fi
say "reassembled $count pieces, checksums OK"
rm -rf "$UNPACK" && mkdir -p "$UNPACK"
cat $pieces | tar -xz -C "$UNPACK"
KIT="$UNPACK/async-serving-gpu-kit"
[ -x "$KIT/app/Async.Serving.Benchmark" ] || fail "the archive holds no app/Async.Serving.Benchmark"
say "unpacked into $KIT ($(du -sh "$KIT" | cut -f1))"

# Folders of the pip packages' shared libraries: nvidia/*/lib (CUDA 12 layout) or nvidia/cu13/lib
# (CUDA 13), wherever python3's nvidia namespace package is, and the usual site-packages folders.
nvidia_roots() {
  if command -v "$PYTHON" >/dev/null; then
    "$PYTHON" -c 'import nvidia, os; print("\n".join(os.path.realpath(p) for p in nvidia.__path__))' 2>/dev/null || true
  fi
  local d
  for d in "${VIRTUAL_ENV:-/nonexistent}"/lib/python3*/site-packages/nvidia "${CONDA_PREFIX:-/nonexistent}"/lib/python3*/site-packages/nvidia \
           /usr/local/lib/python3*/{site,dist}-packages/nvidia /usr/lib/python3/dist-packages/nvidia \
           "$HOME"/.local/lib/python3*/site-packages/nvidia /opt/conda/lib/python3*/site-packages/nvidia; do
    if [ -d "$d" ]; then realpath "$d"; fi
  done
  return 0
}
lib_dirs=$(nvidia_roots | sort -u | while read -r root; do find "$root" -name 'lib*.so*' -printf '%h\n'; done | sort -u)
extra="${CUDA_LIBRARY_DIRS:-}"
lib_path=$(printf '%s\n' ${extra//:/ } $lib_dirs | grep -v '^$' | paste -sd: || true)
export LD_LIBRARY_PATH="${lib_path}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -n "$lib_path" ]; then
  say "LD_LIBRARY_PATH: the CUDA libraries of $(printf '%s\n' $lib_dirs | grep -c . || true) folders of pip packages${extra:+ and CUDA_LIBRARY_DIRS}"
else
  say "no pip CUDA libraries found ($PYTHON has no 'nvidia' package; set CUDA_LIBRARY_DIRS to point at them)"
fi
# What ONNX Runtime's CUDA provider needs (its NEEDED entries, and cuDNN, which it loads itself).
absent=()
for lib in libcuda.so.1 libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcudnn.so.9; do
  found=""
  for d in ${lib_path//:/ }; do [ -e "$d/$lib" ] && found="$d" && break; done
  [ -n "$found" ] || ! ldconfig -p 2>/dev/null | grep -q " $lib " || found="(system)"
  if [ -n "$found" ]; then say "  $lib: $found"; else say "  $lib: NOT FOUND"; absent+=("$lib"); fi
done
[ ${#absent[@]} -eq 0 ] || say "missing ${absent[*]}: the CUDA provider will not load and the benchmark falls back to CPU (pip packages: libcuda is the driver's; nvidia-cuda-runtime, nvidia-cublas, nvidia-curand, nvidia-cudnn-cu13)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/[gpu-kit] GPU: /' || true

MODEL_DIR="$KIT/models/resnet18/1"
if [ ! -s "$MODEL_DIR/model.fp16.onnx" ] && [ "${GPU_KIT_FP16:-1}" = 1 ]; then
  if command -v "$PYTHON" >/dev/null; then
    "$PYTHON" - "$MODEL_DIR/model.onnx" "$MODEL_DIR/model.fp16.onnx" <<'PY' || say "FP16: conversion failed; FP32 only"
import sys
try:
    import onnx
except ImportError:
    print("[gpu-kit] FP16: no converter (python3 lacks the onnx package; pip install onnx onnxconverter-common); FP32 only"); sys.exit(0)
try:
    from onnxconverter_common import float16
    tool = "onnxconverter-common"
except ImportError:
    try:
        from onnxruntime.transformers import float16
        tool = "onnxruntime.transformers.float16"
    except ImportError:
        print("[gpu-kit] FP16: no converter (pip install onnxconverter-common); FP32 only"); sys.exit(0)
model = float16.convert_float_to_float16(onnx.load(sys.argv[1]), keep_io_types=True)
onnx.save(model, sys.argv[2])
print(f"[gpu-kit] FP16: converted with {tool} (convert_float_to_float16, keep_io_types: FP32 in and out)")
PY
  else
    say "FP16: no $PYTHON to convert with; FP32 only"
  fi
fi

mkdir -p "$RESULTS"
say "running the device benchmark (ONNX Runtime alone, then decode on all cores)"
set +e
env -u SERVING_MODELS_DIR "$KIT/app/Async.Serving.Benchmark" --only device --root "$KIT" --out "$RESULTS" "$@" 2>&1 | tee "$RESULTS/run.log"
status=${PIPESTATUS[0]}
set -e
if grep -q 'provider CUDA' "$RESULTS/run.log"; then
  say "ran on the GPU (CUDA provider)"
else
  say "CUDA did not load: these are CPU figures (fallback); see the first lines of $RESULTS/run.log for why"
fi
say "done in $((SECONDS - started)) s (exit $status); figures in $RESULTS/device.json"
exit "$status"
