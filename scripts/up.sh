#!/usr/bin/env bash
# Starts everything on this machine: OS packages, models, build, RabbitMQ, Redis, PostgreSQL, the API
# and one worker. Idempotent: with everything up it changes nothing; a missing process is restarted.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

prepare

KEY_FILE="$STATE/dev-api-key"
[ -s "$KEY_FILE" ] || { umask 077; echo "sk_dev_$(openssl rand -hex 24)" >"$KEY_FILE"; }
API_KEY=$(cat "$KEY_FILE")
DASHBOARD_FILE="$STATE/dashboard-password"
[ -s "$DASHBOARD_FILE" ] || { umask 077; openssl rand -hex 16 >"$DASHBOARD_FILE"; }
DASHBOARD_PASSWORD=$(cat "$DASHBOARD_FILE")
URL="http://127.0.0.1:$API_PORT"

# Job queues are quorum queues: an empty classic one left by an older version is removed before a
# new worker declares it (a non-empty one stops the script with what to do).
pid_alive "$STATE/worker.pid" || migrate_job_queues / || exit 1

start_process api "$ROOT/src/Api/$BIN" Async.Serving.Api.dll
start_process worker "$ROOT/src/Worker/$BIN" Async.Serving.Worker.dll

wait_for 120 "the API ($LOGS/api.log)" api_ready
wait_for 180 "the worker ($LOGS/worker.log)" worker_ready

cat >"$STATE/env" <<ENV
SERVING_URL=$URL
SERVING_API_KEY=$API_KEY
ENV
cat <<MSG
Async.Serving is up.
  API:        $URL   (OpenAPI: $URL/openapi/v1.json)
  Dashboard:  $URL/hangfire   (admin / $DASHBOARD_PASSWORD)
  Metrics:    http://127.0.0.1:$API_MANAGEMENT_PORT/metrics (API management port), http://127.0.0.1:$WORKER_METRICS_PORT/metrics (worker)
  RabbitMQ:   http://127.0.0.1:$RABBIT_MGMT_PORT (guest/guest, loopback only)
  API key:    $API_KEY
  Logs:       $LOGS
Load SERVING_URL and SERVING_API_KEY with:  source .serving/env
MSG
