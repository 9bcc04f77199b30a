#!/usr/bin/env bash
# Memory cost of large JSON submits: starts the built API on its own port (with Redis, PostgreSQL
# and RabbitMQ from lib.sh), posts COUNT bodies of SIZE_MIB MiB of `input.base64` for image.embed
# at once, and prints the API's resident memory before, its peak (VmHWM) and after, with each answer.
#   scripts/measure-json-body.sh [SIZE_MIB=130] [COUNT=4]
# INPUT_FIRST=1 puts "input" before "pipeline" in the body (then the API cannot apply the image cap early).
# Reproduces the figures in docs/reliability.md (the API's intake); the API must be built (scripts/test.sh or
# dotnet build -c Release).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MIB="${1:-130}"
COUNT="${2:-4}"
PORT="${SERVING_MEASURE_PORT:-5391}"
KEY="sk_measure_$(openssl rand -hex 16)"
DLL="$ROOT/src/Api/bin/$CONFIGURATION/net10.0/Async.Serving.Api.dll"
[ -f "$DLL" ] || die "build the API first ($DLL is missing)"
start_services

WORK=$(mktemp -d)
API_PID=""
cleanup() { [ -n "$API_PID" ] && kill "$API_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# {"pipeline":"image.embed","input":{"base64":"AAAA…"}} of SIZE_MIB MiB in all.
python3 - "$WORK/body.json" "$SIZE_MIB" "${INPUT_FIRST:-0}" <<'PY'
import sys
path, mib, input_first = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
head, tail = b'{"pipeline":"image.embed","input":{"base64":"', b'"}}'
if input_first:
    head, tail = b'{"input":{"base64":"', b'"},"pipeline":"image.embed"}'
n = mib * 1024 * 1024 - len(head) - len(tail)
n -= n % 4
with open(path, "wb") as f:
    f.write(head)
    chunk = b"A" * (4 * 1024 * 1024)
    while n > 0:
        f.write(chunk[: min(n, len(chunk))]); n -= min(n, len(chunk))
    f.write(tail)
PY

ConnectionStrings__Redis="127.0.0.1:$REDIS_PORT" \
ConnectionStrings__Postgres="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=serving" \
Serving__RabbitMq__Port="$AMQP_PORT" Serving__Models__Path="$MODELS" \
Serving__Auth__DevelopmentKey="$KEY" Serving__Hangfire__RunServer=false \
ASPNETCORE_URLS="http://127.0.0.1:$PORT" DOTNET_ENVIRONMENT=Production ASPNETCORE_ENVIRONMENT=Production \
  dotnet "$DLL" >"$WORK/api.log" 2>&1 &
API_PID=$!
wait_for 60 "the API on $PORT" curl -fs "http://127.0.0.1:$PORT/healthz"
sleep 2 # let start-up allocations settle

rss() { awk -v f="$1" '$1 == f":" { printf "%.0f", $2 / 1024 }' "/proc/$API_PID/status"; }
before=$(rss VmRSS)
for i in $(seq "$COUNT"); do
  curl -s -o "$WORK/answer$i" -w "%{http_code} %{time_total}s\n" -X POST "http://127.0.0.1:$PORT/v1/jobs" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data-binary @"$WORK/body.json" >"$WORK/status$i" &
done
wait $(jobs -p | grep -v "^$API_PID$") 2>/dev/null || true
sleep 1
after=$(rss VmRSS); peak=$(rss VmHWM)
for i in $(seq "$COUNT"); do
  echo "request $i: $(cat "$WORK/status$i") $(head -c 200 "$WORK/answer$i")"
done
echo "API RSS: before ${before} MiB, peak ${peak} MiB (+$((peak - before))), after ${after} MiB (+$((after - before))); ${COUNT} x ${SIZE_MIB} MiB JSON bodies at once"
