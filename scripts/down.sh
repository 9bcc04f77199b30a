#!/usr/bin/env bash
# Stops everything up.sh (or test.sh) started, by pid. Data stays under .serving/.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_pid() { # name pidfile
  if pid_alive "$2"; then
    log "stopping $1"
    kill "$(cat "$2")" 2>/dev/null || true
    # SIGTERM again each second: Redis refuses one while it writes an AOF it was just switched to
    # (lib.sh's redis_make_durable), and honours the next once that is written.
    for i in $(seq 1 100); do
      pid_alive "$2" || break
      [ $((i % 10)) -ne 0 ] || kill "$(cat "$2")" 2>/dev/null || true
      sleep 0.1
    done
    pid_alive "$2" && kill -9 "$(cat "$2")" 2>/dev/null || true
  fi
  rm -f "$2"
}

stop_pid worker "$STATE/worker.pid"
stop_pid api "$STATE/api.pid"
if rabbit_ready && pid_alive "$STATE/rabbitmq.pid"; then log "stopping RabbitMQ"; ( rabbit_env; "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" -q shutdown >/dev/null ) || true; fi
stop_postgres
stop_pid redis "$STATE/redis.pid"
log "stopped"
