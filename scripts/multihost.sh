#!/usr/bin/env bash
# The multi-host check (docs/deployment.md). Builds a small cluster out of Linux network namespaces on this
# machine: a bridge in a namespace of its own, and one veth pair from it to each "host" namespace, on
# 198.51.100.0/24 (TEST-NET-2, a documentation range that is never routed):
#   svc     198.51.100.10   Redis, PostgreSQL, RabbitMQ
#   api1/2  198.51.100.21/22  an API instance each (webhooks and maintenance through Hangfire on both)
#   wk1/2   198.51.100.31/32  a worker each
#   client  198.51.100.40   the driver (tools/Chaos) and its webhook receiver
# Every process binds to its host's address; no namespace has a route anywhere else, so no traffic leaves
# them. The driver probes the per-key rate limit through both APIs at once (one bucket for the fleet), then
# submits jobs through both APIs; meanwhile the script cuts wk1's link at the bridge (ip link set ... down)
# and restores it later. RabbitMQ proposes a 5 s heartbeat, so it drops wk1's connection within about
# 10 s and redelivers its unacknowledged jobs to wk2. At the end the driver checks that every job ended
# exactly once (terminal, output present, one job.completed webhook per job, nothing changed when reread,
# no second job behind an Idempotency-Key), and the script checks in Redis that every job started while
# the link was down ran on wk2. One line of counts; exit status 0 only when every check passed. Everything
# is torn down at the end, whatever happened (Ctrl-C included).
#   scripts/multihost.sh              160 jobs over 30 s; wk1 cut for 18 s from second 8 (later if it has not finished a job yet)
#   --jobs N                          another number of jobs
#   --no-build                        use the binaries already built (scripts/test.sh has just built them)
# Needs root (ip netns). Environment: SERVING_MULTIHOST_PORT_BASE (18000: ports base+32, +64, +65, +72,
# +73, +74, +79, +80, inside the namespaces), SERVING_MODELS_DIR as for the other scripts. State and logs:
# .serving/multihost (logs/, result.txt, placement.txt, chaos-details.json).
set -euo pipefail

JOBS=160 BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) JOBS="$2"; shift ;;
    --no-build) BUILD=0 ;;
    *) echo "usage: scripts/multihost.sh [--jobs N] [--no-build]" >&2; exit 2 ;;
  esac
  shift
done

MH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NET=198.51.100
NS=asmh # namespace names: asmh-sw (the bridge), asmh-svc, asmh-api1, ...
declare -A HOST_IP=([svc]=$NET.10 [api1]=$NET.21 [api2]=$NET.22 [wk1]=$NET.31 [wk2]=$NET.32 [client]=$NET.40)
HOSTS=(svc api1 api2 wk1 wk2 client)

# A stack of its own: every address, port and folder lib.sh reads is set before it is sourced. The ports
# live inside the namespaces (they cannot clash with the loopback stack anyway), and still differ from
# those of scripts/up.sh and scripts/chaos.sh so that a log line names one stack only.
PORT_BASE="${SERVING_MULTIHOST_PORT_BASE:-18000}"
export SERVING_STATE_DIR="$MH_ROOT/.serving/multihost"
export SERVING_REDIS_PORT=$((PORT_BASE + 79)) SERVING_PG_PORT=$((PORT_BASE + 32))
export SERVING_AMQP_PORT=$((PORT_BASE + 72)) SERVING_RABBIT_MGMT_PORT=$((PORT_BASE + 73))
export SERVING_API_PORT=$((PORT_BASE + 80)) SERVING_RABBIT_NODE=rabbit-multihost@localhost
export SERVING_API_MANAGEMENT_PORT=$((PORT_BASE + 65)) SERVING_WORKER_METRICS_PORT=$((PORT_BASE + 64))
export SERVING_RABBIT_DIST_PORT=$((PORT_BASE + 74))
export SERVING_SERVICES_ADDRESS=${HOST_IP[svc]} SERVING_PG_TRUST_NETWORK=$NET.0/24
# A worker whose link is cut is dropped by RabbitMQ after about two missed heartbeats (5 s each), and its
# unacknowledged jobs requeued; consumer_timeout (60 s) is the second net, for a worker that holds a job
# without acknowledging it while its connection stays up (jobs of this check take well under a second).
export SERVING_RABBIT_HEARTBEAT=5 SERVING_RABBIT_CONSUMER_TIMEOUT_MS=60000
export SERVING_REDIS_ARGS="--appendonly yes --appendfsync everysec"
# A caller's isolated test environment (scripts/test.sh) must not leak into this stack.
unset Serving__RabbitMq__VirtualHost ConnectionStrings__Redis ConnectionStrings__Postgres
source "$MH_ROOT/scripts/lib.sh"

[ "$(id -u)" = 0 ] || die "the multi-host check needs root (ip netns)"

# One run at a time on this machine (the namespace names are fixed).
LOCK=/tmp/async-serving-multihost.lock
take_run_lock "$LOCK" scripts/multihost.sh

# in_host <host> <command...>: runs a command (a lib.sh function too) on that host, with lib.sh sourced
# and the host's address as the one to bind to.
in_host() {
  local host=$1; shift
  ip netns exec "$NS-$host" env SERVING_BIND_ADDRESS="${HOST_IP[$host]}" \
    bash -c 'source "$0/scripts/lib.sh"; "$@"' "$MH_ROOT" "$@"
}

# Ends every process in the namespaces this script makes (only this script starts processes in them),
# then the namespaces: with them go the veth pairs and the bridge. PostgreSQL is stopped first, so that it
# shuts down cleanly.
teardown_net() {
  local ns pid
  ip netns pids "$NS-svc" >/dev/null 2>&1 && in_host svc stop_postgres >/dev/null 2>&1 || true
  for ns in $(ip netns list 2>/dev/null | awk -v p="^$NS-" '$1 ~ p { print $1 }'); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  done
  for _ in $(seq 1 100); do
    local left=0
    for ns in $(ip netns list 2>/dev/null | awk -v p="^$NS-" '$1 ~ p { print $1 }'); do
      [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] || left=1
    done
    [ "$left" = 1 ] || break
    sleep 0.1
  done
  for ns in $(ip netns list 2>/dev/null | awk -v p="^$NS-" '$1 ~ p { print $1 }'); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}

teardown() {
  local status=$?
  trap - EXIT INT TERM
  teardown_net
  log "multi-host cluster removed; logs in $LOGS"
  rm -rf "$LOCK"
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

net_up() {
  ip netns add "$NS-sw" || die "ip netns add failed: the multi-host check needs root and network namespaces"
  ip -n "$NS-sw" link add br0 type bridge
  ip -n "$NS-sw" link set br0 up
  local host
  for host in "${HOSTS[@]}"; do
    ip netns add "$NS-$host"
    ip -n "$NS-$host" link set lo up
    # eth0 in the host, the other end (named after the host) a port of the bridge.
    ip link add eth0 netns "$NS-$host" type veth peer name "$host" netns "$NS-sw"
    ip -n "$NS-sw" link set "$host" master br0
    ip -n "$NS-sw" link set "$host" up
    ip -n "$NS-$host" addr add "${HOST_IP[$host]}/24" dev eth0
    ip -n "$NS-$host" link set eth0 up
  done
}

# Leftovers of an earlier run that did not end cleanly go first, then its data.
teardown_net
rm -rf "$STATE" && mkdir -p "$STATE" "$LOGS"

install_packages iproute2
if [ "$BUILD" = 1 ]; then build_solution; fetch_models; fi
[ -f "$MODELS/resnet18/1/model.onnx" ] || die "no $MODELS/resnet18/1/model.onnx: run scripts/up.sh or scripts/test.sh once"
[ -f "$MH_ROOT/tools/Chaos/$BIN/Async.Serving.Chaos.dll" ] || die "tools/Chaos is not built: run without --no-build"
STARTED=$SECONDS
net_up
log "network: bridge in $NS-sw; ${HOSTS[*]} on $NET.0/24"

# --- svc: Redis, PostgreSQL and RabbitMQ, bound to 198.51.100.10 ---
in_host svc start_rabbitmq &
RABBIT_START=$!
in_host svc start_redis
in_host svc start_postgres
wait "$RABBIT_START" || die "RabbitMQ did not start on svc, see $LOGS/rabbitmq"

# --- two API instances and two workers, each on its own host ---
service_env # the services' address for the processes below, from SERVING_SERVICES_ADDRESS
export API_KEY="sk_multihost_$(openssl rand -hex 16)" DASHBOARD_PASSWORD
DASHBOARD_PASSWORD=$(openssl rand -hex 16)
export Serving__Worker__Models__0=resnet18 # one model to load
export Serving__Security__AllowPrivateNetworks=true # the webhook receiver is on 198.51.100.40
# The rate limit the driver's probe checks: one bucket for the key across both APIs.
RATE_BURST=100 RATE_PER_SECOND=50
export Serving__RateLimits__PermitsPerSecond=$RATE_PER_SECOND Serving__RateLimits__Burst=$RATE_BURST
export Serving__Webhooks__Timeout=00:00:05
export Serving__Webhooks__RetryDelays__0=00:00:01 Serving__Webhooks__RetryDelays__1=00:00:02 \
  Serving__Webhooks__RetryDelays__2=00:00:05 Serving__Webhooks__RetryDelays__3=00:00:10
api_url() { echo "http://${HOST_IP[$1]}:$API_PORT"; }
worker_url() { echo "http://${HOST_IP[$1]}:$WORKER_METRICS_PORT"; }
for api in api1 api2; do
  URL=$(api_url $api); export URL # start_process reads it: Kestrel listens on the host's address
  in_host $api start_process $api "$ROOT/src/Api/$BIN" Async.Serving.Api.dll
done
for wk in wk1 wk2; do in_host $wk start_process $wk "$ROOT/src/Worker/$BIN" Async.Serving.Worker.dll; done
api_up() { alive_or_die "$1"; ip netns exec "$NS-client" curl -fsS "$(api_url "$1")/readyz"; }
worker_up() { alive_or_die "$1"; grep -q "Worker ready" "$LOGS/$1.log"; }
for api in api1 api2; do wait_for 180 "$api ($LOGS/$api.log)" api_up $api; done
for wk in wk1 wk2; do wait_for 180 "$wk ($LOGS/$wk.log)" worker_up $wk; done
log "cluster up after $((SECONDS - STARTED)) s: APIs on $(api_url api1) and $(api_url api2), workers on ${HOST_IP[wk1]} and ${HOST_IP[wk2]}"

# --- the driver, on the client host ---
SUBMIT_SECONDS=30 CUT_AT=8 CUT_FOR=18
READY="$STATE/driver.ready" DONE="$STATE/faults.done" ACCEPTED="$STATE/accepted.txt"
log "driver: rate probe, then $JOBS jobs over ${SUBMIT_SECONDS}s through both APIs; wk1 cut at ${CUT_AT}s for ${CUT_FOR}s"
ip netns exec "$NS-client" env SERVING_API_KEY="$API_KEY" nohup dotnet "$ROOT/tools/Chaos/$BIN/Async.Serving.Chaos.dll" \
  --url "$(api_url api1),$(api_url api2)" --worker-url "$(worker_url wk1),$(worker_url wk2)" \
  --receiver-host "${HOST_IP[client]}" --webhook-every 1 \
  --rate-probe 400 --rate-burst "$RATE_BURST" --rate-per-second "$RATE_PER_SECOND" \
  --jobs "$JOBS" --submit-seconds "$SUBMIT_SECONDS" --settle-seconds 5 --poll-seconds 120 --webhook-wait-seconds 60 \
  --ready-file "$READY" --faults-done-file "$DONE" --details-file "$STATE/chaos-details.json" --accepted-file "$ACCEPTED" \
  >"$STATE/driver-result.txt" 2>"$LOGS/driver.log" 4>&- &
DRIVER_PID=$!
driver_ready() { kill -0 "$DRIVER_PID" 2>/dev/null || die "the driver exited while starting, see $LOGS/driver.log"; [ -f "$READY" ]; }
wait_for 180 "the driver" driver_ready
T0=$SECONDS

sleep $((CUT_AT - (SECONDS - T0) > 0 ? CUT_AT - (SECONDS - T0) : 0))
# The cut is meant to meet a busy wk1: on a machine so loaded that jobs start late, it waits (up to a
# minute more) until wk1 has finished a job (its serving_worker_jobs_total).
wk1_busy() {
  ip netns exec "$NS-client" curl -fsS "$(worker_url wk1)/metrics" 2>/dev/null \
    | awk '/^serving_worker_jobs_total\{.*status="succeeded"/ { n += $2 } END { exit !(n >= 1) }'
}
for _ in $(seq 1 120); do wk1_busy && break; sleep 0.5; done
kill -0 "$DRIVER_PID" 2>/dev/null || die "the driver exited before the cut, see $LOGS/driver.log"
ip -n "$NS-sw" link set wk1 down
CUT_MS=$(date +%s%3N) # after the cut, and the restore's before it: a start inside them was made while wk1 was cut off
log "cut: wk1's link down at second $((SECONDS - T0)) of the submits (ip -n $NS-sw link set wk1 down)"
sleep "$CUT_FOR"
BACK_MS=$(date +%s%3N)
ip -n "$NS-sw" link set wk1 up
log "restored: wk1's link up after $(((BACK_MS - CUT_MS + 500) / 1000)) s"
touch "$DONE"

status=0
wait "$DRIVER_PID" || status=$?
[ -s "$STATE/driver-result.txt" ] || { tail -30 "$LOGS/driver.log" >&2; die "the driver printed no counts (exit $status), see $LOGS/driver.log"; }
[ "$status" -eq 0 ] || { tail -15 "$LOGS/driver.log" >&2; log "details: $STATE/chaos-details.json"; }

# --- where each job ran: its worker and last start, from the job store on svc ---
job_key() { local id=$1; printf '{jobs-%x}:job:%s' "$((16#${id: -1}))" "$id"; }
while read -r id; do
  [ -n "$id" ] && echo "HMGET $(job_key "$id") worker started_at attempts status"
done <"$ACCEPTED" | ip netns exec "$NS-svc" redis-cli -h "${HOST_IP[svc]}" -p "$REDIS_PORT" | paste - - - - >"$STATE/placement.txt"
WK1_PID=$(cat "$STATE/wk1.pid") WK2_PID=$(cat "$STATE/wk2.pid")
placement=$(awk -F'\t' -v w1="-$WK1_PID-" -v w2="-$WK2_PID-" -v cut="$CUT_MS" -v back="$BACK_MS" '
  { on1 = index($1, w1) > 0; on2 = index($1, w2) > 0
    if (on1) n1++; else if (on2) n2++; else other++
    if ($3 > 1) redelivered++
    if ($2 >= cut && $2 < back) { if (on2) during_ok++; else during_bad++ }
    if ($2 < cut && on1) before++
    if ($2 >= back && on1) rejoined++ }
  END { printf "ran_on_wk1=%d ran_on_wk2=%d ran_elsewhere=%d redelivered=%d wk1_before_cut=%d started_during_cut_on_wk2=%d started_during_cut_elsewhere=%d wk1_after_restore=%d\n",
          n1, n2, other, redelivered, before, during_ok, during_bad, rejoined }' "$STATE/placement.txt")
value() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$placement"; }
# wk1 ran jobs, wk2 ran every job started while the link was down (and at least one).
if [ "$(value ran_on_wk1)" -eq 0 ] || [ "$(value ran_elsewhere)" -ne 0 ] \
    || [ "$(value started_during_cut_on_wk2)" -eq 0 ] || [ "$(value started_during_cut_elsewhere)" -ne 0 ]; then
  log "placement check failed: $placement (per job: worker, started_at, attempts, status in $STATE/placement.txt)"
  status=1
fi
# On a machine so loaded that no job started in the first seconds, the cut meets an idle wk1: the run
# still checks the rest, but says that this part was not exercised.
[ "$(value wk1_before_cut)" -gt 0 ] || log "warning: wk1 started no job before the cut; its in-flight work was not exercised"

counts=$(sed 's/^chaos: //' "$STATE/driver-result.txt")
echo "multihost: $([ "$status" -eq 0 ] && echo passed || echo FAILED) $counts $placement cut_s=$(((BACK_MS - CUT_MS + 500) / 1000)) total_s=$((SECONDS - STARTED))" \
  | tee "$STATE/result.txt"
exit "$status"
