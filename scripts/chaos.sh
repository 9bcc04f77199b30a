#!/usr/bin/env bash
# Fault suite (docs/chaos.md). Starts a complete stack of its own (Redis with AOF, PostgreSQL, a second
# RabbitMQ node, the API and one worker, on ports and in a state folder of their own, so that neither
# the stack of scripts/up.sh nor a test run notices), runs the driver tools/Chaos, which submits jobs
# (half with signed webhooks to its own receiver), and meanwhile kills the worker with SIGKILL and
# restarts it, restarts RabbitMQ, restarts Redis and stops PostgreSQL for a while. After a settle time
# the driver checks every accepted job and prints one line of counts; the exit status is 0 only when
# every failure count is 0. The stack is torn down at the end, whatever happened.
#   scripts/chaos.sh                full run: 1,000 jobs, 4 worker kills, PostgreSQL down 60 s
#   scripts/chaos.sh --reduced      CI form: 200 jobs, one fault of each kind, PostgreSQL down 25 s
#   --jobs N                        another number of jobs
#   --no-build                      use the binaries already built (scripts/test.sh has just built them)
# Environment: SERVING_CHAOS_PORT_BASE (17000: its ports are base+32, +64, +65, +72, +73, +74, +79, +80),
# SERVING_MODELS_DIR as for the other scripts. Logs and the details of a run: .serving/chaos/logs.
set -euo pipefail

REDUCED=0 JOBS="" BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --reduced) REDUCED=1 ;;
    --jobs) JOBS="$2"; shift ;;
    --no-build) BUILD=0 ;;
    *) echo "usage: scripts/chaos.sh [--reduced] [--jobs N] [--no-build]" >&2; exit 2 ;;
  esac
  shift
done

# A stack of its own: every address and folder lib.sh reads is set before it is sourced.
CHAOS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT_BASE="${SERVING_CHAOS_PORT_BASE:-17000}"
export SERVING_STATE_DIR="$CHAOS_ROOT/.serving/chaos"
export SERVING_REDIS_PORT=$((PORT_BASE + 79)) SERVING_PG_PORT=$((PORT_BASE + 32))
export SERVING_AMQP_PORT=$((PORT_BASE + 72)) SERVING_RABBIT_MGMT_PORT=$((PORT_BASE + 73))
export SERVING_API_PORT=$((PORT_BASE + 80)) SERVING_RABBIT_NODE=rabbit-chaos@localhost
export SERVING_API_MANAGEMENT_PORT=$((PORT_BASE + 65)) SERVING_WORKER_METRICS_PORT=$((PORT_BASE + 64))
# Its Erlang distribution port next to its AMQP port: AMQP + 20000 would fall in the ephemeral range.
export SERVING_RABBIT_DIST_PORT=$((PORT_BASE + 74))
export SERVING_REDIS_ARGS="--appendonly yes --appendfsync everysec"
WORKER_PORT=$((PORT_BASE + 64))
# A caller's isolated test environment (scripts/test.sh) must not leak into this stack.
unset Serving__RabbitMq__VirtualHost ConnectionStrings__Redis ConnectionStrings__Postgres
source "$CHAOS_ROOT/scripts/lib.sh"

# One run at a time on this machine, since the ports are fixed.
LOCK=/tmp/async-serving-chaos.lock
take_run_lock "$LOCK" scripts/chaos.sh

teardown() {
  local status=$?
  trap - EXIT
  [ -n "${DRIVER_PID:-}" ] && kill "$DRIVER_PID" 2>/dev/null || true
  bash "$ROOT/scripts/down.sh" >/dev/null 2>&1 || true
  # A broker still starting is not stopped by down.sh (it asks the node to stop): end it by its pid.
  pid_alive "$STATE/rabbitmq.pid" && kill "$(cat "$STATE/rabbitmq.pid")" 2>/dev/null || true
  log "chaos stack stopped; logs in $LOGS"
  rm -rf "$LOCK"
  exit $status
}
trap teardown EXIT

# Leftovers of an earlier run that did not end cleanly go first, then its data.
bash "$ROOT/scripts/down.sh" >/dev/null 2>&1 || true
rm -rf "$STATE" && mkdir -p "$STATE" "$LOGS"

install_packages
start_services
if [ "$BUILD" = 1 ]; then build_solution; fetch_models; fi
[ -f "$MODELS/resnet18/1/model.onnx" ] || die "no $MODELS/resnet18/1/model.onnx: run scripts/up.sh or scripts/test.sh once"
service_env

API_KEY="sk_chaos_$(openssl rand -hex 16)"
DASHBOARD_PASSWORD=$(openssl rand -hex 16)
URL="http://127.0.0.1:$API_PORT"
export Serving__Worker__MetricsPort="$WORKER_PORT" Serving__Worker__Models__0=resnet18 # quick restarts: one model to load
export Serving__Security__AllowPrivateNetworks=true # the receiver is on 127.0.0.1
export Serving__RateLimits__PermitsPerSecond=100000 Serving__RateLimits__Burst=100000
export Serving__Webhooks__Timeout=00:00:05
export Serving__Webhooks__RetryDelays__0=00:00:01 Serving__Webhooks__RetryDelays__1=00:00:02 \
  Serving__Webhooks__RetryDelays__2=00:00:05 Serving__Webhooks__RetryDelays__3=00:00:10 \
  Serving__Webhooks__RetryDelays__4=00:00:20 Serving__Webhooks__RetryDelays__5=00:00:30
start_process api "$ROOT/src/Api/$BIN" Async.Serving.Api.dll
start_process worker "$ROOT/src/Worker/$BIN" Async.Serving.Worker.dll
wait_for 120 "the API ($LOGS/api.log)" api_ready
wait_for 180 "the worker ($LOGS/worker.log)" worker_ready

# --- The faults ---
kill_worker() {
  log "fault: SIGKILL worker (pid $(cat "$STATE/worker.pid")), then start it again"
  kill -9 "$(cat "$STATE/worker.pid")" 2>/dev/null || true
  for _ in $(seq 1 50); do pid_alive "$STATE/worker.pid" || break; sleep 0.1; done
  start_process worker "$ROOT/src/Worker/$BIN" Async.Serving.Worker.dll
}
restart_rabbitmq() {
  # SIGTERM stops the node as rabbitmqctl shutdown does, without waiting the CLI's own start (up to 30 s on 2 busy cores).
  log "fault: RabbitMQ stopped (SIGTERM to the node), then started again"
  # Its pid file goes before the VM exits (and frees the distribution port): wait for the process itself.
  local pid; pid=$(cat "$STATE/rabbitmq.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && die "RabbitMQ did not stop within 60 s"
  start_rabbitmq
  log "RabbitMQ is back"
}
restart_redis() {
  log "fault: Redis SHUTDOWN (AOF on) and start again"
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" SHUTDOWN >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do pid_alive "$STATE/redis.pid" || break; sleep 0.1; done
  start_redis
}
stop_postgres() {
  log "fault: PostgreSQL stopped (pg_ctl stop -m fast)"
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$(cat "$STATE/postgres.datadir")" -m fast -w stop >/dev/null
  PG_STOPPED=$SECONDS
}
resume_postgres() { # <seconds down>: counted from the stop, however late the faults in between ran
  local wait=$((PG_STOPPED + $1 - SECONDS))
  [ "$wait" -le 0 ] || sleep "$wait"
  start_postgres
  log "PostgreSQL is back after $((SECONDS - PG_STOPPED)) s"
}

# at <second> <fault...>: runs the fault that many seconds after the driver started submitting (at once when late).
at() {
  local when=$1; shift
  local wait=$((T0 + when - SECONDS))
  [ "$wait" -le 0 ] || sleep "$wait"
  pid_alive "$STATE/driver.pid" || die "the driver exited before the faults were over, see $LOGS/driver.log"
  "$@"
}

# Each fault meets traffic of its own: PostgreSQL goes down first, while jobs are being submitted and
# finished (their events then reach the API while it cannot enqueue webhooks); RabbitMQ's restart,
# which holds every submit up, comes last.
if [ "$REDUCED" = 1 ]; then
  JOBS=${JOBS:-200} SUBMIT_SECONDS=50 SETTLE=10 POLL=150 WEBHOOK_WAIT=180 # Hangfire back-off: see docs/chaos.md
  schedule() {
    at 5 stop_postgres
    at 12 restart_redis # while PostgreSQL is down
    resume_postgres 25 # longer than the 21 s of the API's job-event consumer retries
    at 33 kill_worker
    at 42 restart_rabbitmq
  }
else
  JOBS=${JOBS:-1000} SUBMIT_SECONDS=150 SETTLE=30 POLL=300 WEBHOOK_WAIT=150
  schedule() {
    at 10 stop_postgres
    at 25 kill_worker # while PostgreSQL is down
    at 40 restart_redis # while PostgreSQL is down
    resume_postgres 60
    at 80 kill_worker
    at 95 restart_rabbitmq
    at 125 kill_worker
    at 145 kill_worker
  }
fi

READY="$STATE/driver.ready" DONE="$STATE/faults.done"
log "driver: $JOBS jobs over ${SUBMIT_SECONDS}s; faults while they run ($( [ "$REDUCED" = 1 ] && echo reduced || echo full ) schedule)"
SERVING_API_KEY="$API_KEY" nohup dotnet "$ROOT/tools/Chaos/$BIN/Async.Serving.Chaos.dll" \
  --url "$URL" --worker-url "http://127.0.0.1:$WORKER_PORT" --jobs "$JOBS" --submit-seconds "$SUBMIT_SECONDS" \
  --settle-seconds "$SETTLE" --poll-seconds "$POLL" --webhook-wait-seconds "$WEBHOOK_WAIT" \
  --ready-file "$READY" --faults-done-file "$DONE" --details-file "$LOGS/chaos-details.json" \
  >"$LOGS/chaos-result.txt" 2>"$LOGS/driver.log" 4>&- &
DRIVER_PID=$!
echo "$DRIVER_PID" >"$STATE/driver.pid"
driver_ready() { pid_alive "$STATE/driver.pid" || die "the driver exited while starting, see $LOGS/driver.log"; [ -f "$READY" ]; }
wait_for 180 "the chaos driver" driver_ready
T0=$SECONDS
schedule
log "faults over"
touch "$DONE"

status=0
wait "$DRIVER_PID" || status=$?
DRIVER_PID=""
if [ ! -s "$LOGS/chaos-result.txt" ]; then
  tail -30 "$LOGS/driver.log" >&2
  die "the driver printed no counts (exit $status), see $LOGS/driver.log"
fi
[ "$status" -eq 0 ] || { tail -15 "$LOGS/driver.log" >&2; log "details: $LOGS/chaos-details.json"; }
cat "$LOGS/chaos-result.txt"
exit "$status"
