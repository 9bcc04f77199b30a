#!/usr/bin/env bash
# OCR evaluation on real images (see docs/pipelines.md): fetches the images from Debian packages,
# reads them with image.ocr (the worker's OcrModel, in-process: tools/OcrEval), with
# @gutenye/ocr-node 1.4.8 (the same PP-OCRv4 ONNX files through onnxruntime-node) and with
# Tesseract 5.3 (Debian tesseract-ocr, English), and prints word recall, CER and line counts per
# image and their means. Outputs land in .serving/ocr-eval/<engine>/NAME.txt.
#
# usage: scripts/eval-ocr.sh [--model ppocr@4]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="$STATE/ocr-eval"
TOOL="$ROOT/tools/OcrEval"

export DEBIAN_FRONTEND=noninteractive
wanted=(tesseract-ocr=5.3.0-2 tesseract-ocr-eng=1:4.1.0-2 ffmpeg)
missing=()
for p in "${wanted[@]}"; do
  name=${p%%=*} version=""; [[ "$p" == *=* ]] && version=${p#*=}
  [[ "$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$name" 2>/dev/null)" == "installed $version"* ]] || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${missing[*]}"
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$LOGS/eval-apt.log" 2>&1 \
    || die "apt-get install failed, see $LOGS/eval-apt.log"
fi
command -v npm >/dev/null || die "npm is needed for @gutenye/ocr-node"

fetch_ocr_models
fetch_ocr_eval_images all
npm_tools OcrEval/peer "@gutenye/ocr-node, the same-weights peer"
log "building tools/OcrEval"
dotnet build "$TOOL/OcrEval.csproj" -c "$CONFIGURATION" -nologo -v q -clp:NoSummary >"$LOGS/ocr-eval-build.log" 2>&1 \
  || die "building tools/OcrEval failed, see $LOGS/ocr-eval-build.log"

rm -rf "$OUT" && mkdir -p "$OUT/gutenye" "$OUT/tesseract" "$OUT/image.ocr"
log "reading with Tesseract $(tesseract --version 2>&1 | head -1 | awk '{print $2}')"
for image in "$OCR_EVAL_IMAGES"/*.png; do
  name=$(basename "$image" .png)
  [[ -f "$TOOL/truth/$name.txt" ]] || continue
  tesseract "$image" "$OUT/tesseract/$name" -l eng --psm 3 >/dev/null 2>&1 || die "tesseract failed on $image"
  sed -i '/^[[:space:]]*$/d' "$OUT/tesseract/$name.txt"
done
log "reading with @gutenye/ocr-node"
(cd "$TOOL/peer" && node read.mjs "$OUT/gutenye" "$OCR_EVAL_IMAGES"/*.png) 2>"$LOGS/eval-gutenye.log" \
  || die "@gutenye/ocr-node failed, see $LOGS/eval-gutenye.log"
log "reading with image.ocr and scoring"
dotnet "$TOOL/bin/$CONFIGURATION/net10.0/Async.Serving.OcrEval.dll" --models "$MODELS" --images "$OCR_EVAL_IMAGES" \
  --truth "$TOOL/truth" --out "$OUT/image.ocr" --peer "gutenye=$OUT/gutenye" --peer "tesseract=$OUT/tesseract" "$@" \
  2>"$LOGS/eval-ocr.log"
