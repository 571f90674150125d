#!/usr/bin/env bash
# A Ray head and one worker node on this machine (a two-node cluster in miniature).
source "$(dirname "$0")/common.sh"
export RAY_USAGE_STATS_ENABLED=0
# Ray's token authentication: every node and driver presents the same secret.
TOKEN_FILE="$SVC/ray_auth_token"
[ -f "$TOKEN_FILE" ] || (umask 077; "$VENV_BIN/python" -c "import secrets; print(secrets.token_hex(32))" >"$TOKEN_FILE")
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$TOKEN_FILE"
HEAD_CPUS="${LMOPS_RAY_HEAD_CPUS:-1}"
WORKER_CPUS="${LMOPS_RAY_WORKER_CPUS:-1}"

start() {
  if status; then log "ray already up"; return 0; fi
  "$VENV_BIN/ray" start --head --node-ip-address 127.0.0.1 --port "$RAY_PORT" \
    --num-cpus "$HEAD_CPUS" --include-dashboard false --temp-dir "/tmp/lmops-ray" \
    --disable-usage-stats >>"$LOGS/ray-head.log" 2>&1 || fail ray-head
  "$VENV_BIN/ray" start --address "127.0.0.1:$RAY_PORT" --node-ip-address 127.0.0.1 \
    --num-cpus "$WORKER_CPUS" --disable-usage-stats >>"$LOGS/ray-worker.log" 2>&1 || fail ray-worker
  wait_for ray-head 60 two_nodes
  log "ray up: head 127.0.0.1:$RAY_PORT + 1 worker node"
}

two_nodes() { RAY_ADDRESS="127.0.0.1:$RAY_PORT" "$VENV_BIN/python" - <<'PY'
import ray, sys
ray.init(logging_level="ERROR", log_to_driver=False)
alive = [n for n in ray.nodes() if n["Alive"]]
sys.exit(0 if len(alive) >= 2 else 1)
PY
}

stop() { "$VENV_BIN/ray" stop --force >/dev/null 2>&1 || true; }

status() { RAY_ADDRESS="127.0.0.1:$RAY_PORT" timeout 30 "$VENV_BIN/ray" status >/dev/null 2>&1; }

"${1:-status}"
