#!/usr/bin/env bash
# Prefect server (on PostgreSQL) and a process worker polling the lmops work pool.
source "$(dirname "$0")/common.sh"
API="http://127.0.0.1:$PREFECT_PORT/api"
export PREFECT_HOME="$SVC/prefect-home" PREFECT_SERVER_ANALYTICS_ENABLED=false

start() {
  if ! status; then
    PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://lmops@127.0.0.1:$PG_PORT/prefect" \
      PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT="$PREFECT_PORT" \
      PREFECT_UI_API_URL="$API" setsid "$VENV_BIN/prefect" server start \
      >>"$LOGS/prefect-server.log" 2>&1 &
    echo $! >"$RUN/prefect-server.pid"
    wait_for prefect-server 180 status
  fi
  PREFECT_API_URL="$API" "$VENV_BIN/prefect" work-pool inspect "$POOL" >/dev/null 2>&1 ||
    PREFECT_API_URL="$API" "$VENV_BIN/prefect" work-pool create "$POOL" --type process >/dev/null
  if ! pid_alive prefect-worker; then
    # The worker runs flows with the services' environment (MLflow, Ray, Prefect).
    set -a; source "$LMOPS_HOME/services.env"; set +a
    setsid "$VENV_BIN/prefect" worker start --pool "$POOL" --type process \
      >>"$LOGS/prefect-worker.log" 2>&1 &
    echo $! >"$RUN/prefect-worker.pid"
    wait_for prefect-worker 60 worker_polling
  fi
  log "prefect up on $API (pool $POOL, worker pid $(cat "$RUN/prefect-worker.pid"))"
}

worker_polling() { pid_alive prefect-worker && grep -q "started" "$LOGS/prefect-worker.log"; }

stop() { stop_pid prefect-worker; stop_pid prefect-server; }

status() { http_ok "$API/health"; }

"${1:-status}"
