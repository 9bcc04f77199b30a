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

BIN="bin/$CONFIGURATION/net10.0"
start_process() { # name project-dir dll
  local name=$1 dir=$2 dll=$3
  if pid_alive "$STATE/$name.pid"; then return; fi
  log "starting $name"
  [ -f "$LOGS/$name.log" ] && mv "$LOGS/$name.log" "$LOGS/$name.log.1"
  (
    cd "$dir" # the content root: appsettings.json sits beside the dll
    export Serving__Auth__DevelopmentKey="$API_KEY" Serving__Auth__DevelopmentTenant=dev
    export Serving__Hangfire__DashboardUsername=admin Serving__Hangfire__DashboardPassword="$DASHBOARD_PASSWORD"
    export ASPNETCORE_URLS="$URL" DOTNET_ENVIRONMENT=Production ASPNETCORE_ENVIRONMENT=Production
    nohup dotnet "$dll" >"$LOGS/$name.log" 2>&1 4>&- &
    echo $! >"$STATE/$name.pid"
  )
}

# Job queues are quorum queues: an empty classic one left by an older version is removed before a
# new worker declares it (a non-empty one stops the script with what to do).
pid_alive "$STATE/worker.pid" || migrate_job_queues / || exit 1

start_process api "$ROOT/src/Api/$BIN" Async.Serving.Api.dll
start_process worker "$ROOT/src/Worker/$BIN" Async.Serving.Worker.dll

# A process that died while starting fails the wait at once, with its log's tail.
alive_or_die() { pid_alive "$STATE/$1.pid" || { tail -30 "$LOGS/$1.log" >&4; die "$1 exited while starting, see $LOGS/$1.log"; }; }
api_ready() { alive_or_die api; curl -fsS "$URL/readyz" >/dev/null; }
worker_ready() { alive_or_die worker; grep -q "Worker ready" "$LOGS/worker.log"; }
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
  RabbitMQ:   http://127.0.0.1:$RABBIT_MGMT_PORT (guest/guest, loopback only)
  API key:    $API_KEY
  Logs:       $LOGS
Load SERVING_URL and SERVING_API_KEY with:  source .serving/env
MSG
