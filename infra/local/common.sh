# Shared settings for the local real services. Sourced by every script here.
# Everything lives in $LMOPS_HOME/services (data), $LMOPS_HOME/logs and $LMOPS_HOME/run (pids).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LMOPS_HOME="$(realpath -m "${LMOPS_HOME:-$REPO/.lmops}")"
SVC="$LMOPS_HOME/services"
LOGS="$LMOPS_HOME/logs"
RUN="$LMOPS_HOME/run"
VENV_BIN="${LMOPS_VENV_BIN:-$REPO/.venv/bin}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT="${LMOPS_PG_PORT:-5433}"
MLFLOW_PORT="${LMOPS_MLFLOW_PORT:-5001}"
PREFECT_PORT="${LMOPS_PREFECT_PORT:-4200}"
RAY_PORT="${LMOPS_RAY_PORT:-6380}"
POOL="${LMOPS_WORK_POOL:-lmops-process}"
# PostgreSQL refuses to run as root; the cluster belongs to this user.
PG_USER="${LMOPS_PG_OS_USER:-postgres}"
mkdir -p "$SVC" "$LOGS" "$RUN"

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# wait_for NAME SECONDS CMD...: poll CMD until it succeeds; fail with the log's tail.
wait_for() {
  local name=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [ -f "$RUN/$name.pid" ] && ! pid_alive "$name"; then break; fi  # it died: fail now
    sleep 0.5
  done
  echo "error: $name did not become healthy (waited up to ${secs}s); last log lines:" >&2
  tail -n 20 "$LOGS/$name.log" >&2 || true
  return 1
}

# fail NAME: report a failed start with the tail of its log.
fail() { echo "error: $1 failed to start; last log lines:" >&2; tail -n 20 "$LOGS/$1.log" >&2; exit 1; }

pid_alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# stop_pid NAME: TERM, wait, then KILL; removes the pid file.
stop_pid() {
  local name=$1 pid
  [ -f "$RUN/$name.pid" ] || return 0
  pid=$(cat "$RUN/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

http_ok() { "$VENV_BIN/python" - "$1" 2>/dev/null <<'PY'
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
PY
}
