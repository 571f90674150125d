#!/usr/bin/env bash
# PostgreSQL for MLflow (tracking + auth) and Prefect: initdb into $LMOPS_HOME on first start.
source "$(dirname "$0")/common.sh"
DATA="$SVC/postgres"
PGLOG="$LOGS/postgres.log"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi; }

start() {
  if [ "$(id -u)" = 0 ] && ! id "$PG_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home "$PG_USER"
  fi
  if [ ! -e "$DATA" ]; then
    mkdir -p "$DATA"; [ "$(id -u)" = 0 ] && chown "$PG_USER" "$DATA"
    chmod 700 "$DATA"
    if ! as_pg test -w "$DATA"; then
      # LMOPS_HOME sits under a folder the postgres user cannot enter (e.g. /root):
      # keep the cluster in /var/lib and leave a link where it is expected.
      local alt="/var/lib/lmops-postgres/$(echo "$SVC" | sha1sum | cut -c1-12)"
      mkdir -p "$alt"; chown "$PG_USER" "$alt"; chmod 700 "$alt"
      rmdir "$DATA"; ln -s "$alt" "$DATA"
    fi
  fi
  DATA="$(readlink -f "$DATA")"  # the postgres user must not need to traverse LMOPS_HOME
  if [ ! -f "$DATA/PG_VERSION" ]; then
    as_pg "$PG_BIN/initdb" -D "$DATA/" -U lmops --auth=trust --encoding=UTF8 >"$LOGS/postgres-init.log"
  fi
  if [ "$(id -u)" = 0 ]; then  # the server writes its own log: somewhere it may write
    touch "$PGLOG" && chown "$PG_USER" "$PGLOG"
    as_pg test -w "$PGLOG" || PGLOG="$DATA/postgres.log"
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$DATA/" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$DATA/" -l "$PGLOG" -w -t 60 \
      -o "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null
  fi
  for db in mlflow mlflow_auth prefect; do  # idempotent: "already exists" is fine
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U lmops "$db" 2>/dev/null || true
  done
  log "postgres up on 127.0.0.1:$PG_PORT (data $DATA)"
}

stop() { DATA="$(readlink -f "$DATA")"; [ -f "$DATA/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$DATA/" -m fast -w stop >/dev/null 2>&1 || true; }

status() { as_pg "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1; }

"${1:-status}"
