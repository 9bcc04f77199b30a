#!/usr/bin/env bash
# Stops everything up.sh (or test.sh) started, by pid. Data stays under .serving/.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_pid worker "$STATE/worker.pid"
stop_pid api "$STATE/api.pid"
if rabbit_ready && pid_alive "$STATE/rabbitmq.pid"; then log "stopping RabbitMQ"; ( rabbit_env; "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" -q shutdown >/dev/null ) || true; fi
stop_postgres
stop_pid redis "$STATE/redis.pid"
log "stopped"
