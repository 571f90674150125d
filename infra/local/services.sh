#!/usr/bin/env bash
# lmops local services: up | down | status | env. `lmops services ...` calls this.
# Order: PostgreSQL -> MLflow -> Ray -> Prefect server + worker (the worker needs the rest).
source "$(dirname "$0")/common.sh"
HERE="$(dirname "$0")"

write_env() {
  umask 077
  cat >"$LMOPS_HOME/services.env" <<ENV
LMOPS_HOME=$LMOPS_HOME
MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT
MLFLOW_TRACKING_USERNAME=admin
MLFLOW_TRACKING_PASSWORD=$(cat "$SVC/mlflow_admin_password")
PREFECT_API_URL=http://127.0.0.1:$PREFECT_PORT/api
RAY_ADDRESS=127.0.0.1:$RAY_PORT
RAY_AUTH_MODE=token
RAY_AUTH_TOKEN_PATH=$SVC/ray_auth_token
ENV
}

up() {
  local t0=$SECONDS
  bash "$HERE/postgres.sh" start
  bash "$HERE/mlflow.sh" start
  bash "$HERE/ray.sh" start
  write_env
  bash "$HERE/prefect.sh" start
  log "all services up in $((SECONDS - t0)) s; use them with: set -a; source $LMOPS_HOME/services.env; set +a"
}

down() {
  bash "$HERE/prefect.sh" stop
  bash "$HERE/ray.sh" stop
  bash "$HERE/mlflow.sh" stop
  bash "$HERE/postgres.sh" stop
  log "all services stopped"
}

status() {
  local rc=0
  for s in postgres mlflow ray prefect; do
    if bash "$HERE/$s.sh" status; then echo "$s: up"; else echo "$s: down"; rc=1; fi
  done
  return $rc
}

show_env() { cat "$LMOPS_HOME/services.env"; }

case "${1:-status}" in env) show_env ;; *) "${1:-status}" ;; esac
