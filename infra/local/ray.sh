#!/usr/bin/env bash
# A Ray head and one worker node on this machine (a two-node cluster in miniature).
# Each node is a `ray start --block` in a session of its own (setsid), with its pid in
# $RUN: `stop` ends those two sessions (TERM, then KILL) and nothing else. Never
# `ray stop`: it ends every Ray process on the host, other people's clusters included.
source "$(dirname "$0")/common.sh"
export RAY_USAGE_STATS_ENABLED=0
# Ray's token authentication: every node and driver presents the same secret.
TOKEN_FILE="$SVC/ray_auth_token"
[ -f "$TOKEN_FILE" ] || (umask 077; "$VENV_BIN/python" -c "import secrets; print(secrets.token_hex(32))" >"$TOKEN_FILE")
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$TOKEN_FILE"
HEAD_CPUS="${LMOPS_RAY_HEAD_CPUS:-1}"
WORKER_CPUS="${LMOPS_RAY_WORKER_CPUS:-1}"
# One temp dir per LMOPS_HOME, kept short: Ray puts unix sockets under it (107-byte limit).
RAY_TMP="/tmp/lmops-ray-$(echo "$LMOPS_HOME" | sha1sum | cut -c1-10)"

start() {
  if status; then log "ray already up"; return 0; fi
  if ! pid_alive ray-head; then
    setsid "$VENV_BIN/ray" start --block --head --node-ip-address 127.0.0.1 --port "$RAY_PORT" \
      --num-cpus "$HEAD_CPUS" --include-dashboard false --temp-dir "$RAY_TMP" \
      --disable-usage-stats >>"$LOGS/ray-head.log" 2>&1 &
    echo $! >"$RUN/ray-head.pid"
    wait_for ray-head 60 status || { stop; exit 1; }
  fi
  if ! pid_alive ray-worker; then
    setsid "$VENV_BIN/ray" start --block --address "127.0.0.1:$RAY_PORT" \
      --node-ip-address 127.0.0.1 --num-cpus "$WORKER_CPUS" --temp-dir "$RAY_TMP" \
      --disable-usage-stats >>"$LOGS/ray-worker.log" 2>&1 &
    echo $! >"$RUN/ray-worker.pid"
  fi
  wait_for ray-worker 60 two_nodes || { stop; exit 1; }
  log "ray up: head 127.0.0.1:$RAY_PORT + 1 worker node (pids $(cat "$RUN/ray-head.pid") $(cat "$RUN/ray-worker.pid"), temp dir $RAY_TMP)"
}

two_nodes() { RAY_ADDRESS="127.0.0.1:$RAY_PORT" "$VENV_BIN/python" - <<'PY'
import ray, sys
ray.init(logging_level="ERROR", log_to_driver=False)
alive = [n for n in ray.nodes() if n["Alive"]]
sys.exit(0 if len(alive) >= 2 else 1)
PY
}

# session_is_ours SID: one of the session's processes names this home's temp dir in its
# command line or its open files (Ray's agents retitle themselves: `ray::DashboardAgent`).
# While any process of a session lives, Linux hands its id to no one else.
session_is_ours() {
  local p
  for p in $(pgrep -s "$1"); do
    if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$RAY_TMP" ||
      ls -l "/proc/$p/fd" 2>/dev/null | grep -qF -- "$RAY_TMP"; then
      return 0
    fi
  done
  return 1
}

# stop_node NAME: end the session that `ray start --block` leads (setsid: its pid is the
# session id). TERM to it first, so that Ray shuts its node down in order; then whatever
# is left of that session (raylet, GCS, agents, workers) gets TERM and, after a grace
# period, KILL. A stale pid file (after a reboot, say) may name someone else's session:
# it is left alone.
stop_node() {
  local name=$1 sid
  [ -f "$RUN/$name.pid" ] || return 0
  sid=$(cat "$RUN/$name.pid")
  if session_is_ours "$sid"; then
    kill -TERM "$sid" 2>/dev/null || true
    for _ in $(seq 1 40); do pgrep -s "$sid" >/dev/null || break; sleep 0.25; done
    pkill -TERM -s "$sid" 2>/dev/null || true
    for _ in $(seq 1 20); do pgrep -s "$sid" >/dev/null || break; sleep 0.25; done
    pkill -KILL -s "$sid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

stop() { stop_node ray-worker; stop_node ray-head; }

# A closed GCS port answers "down" at once (`ray status` alone retries for 30 s).
gcs_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$RAY_PORT") 2>/dev/null; }

status() {
  gcs_listening && RAY_ADDRESS="127.0.0.1:$RAY_PORT" timeout 30 "$VENV_BIN/ray" status >/dev/null 2>&1
}

"${1:-status}"
