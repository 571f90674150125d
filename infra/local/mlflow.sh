#!/usr/bin/env bash
# MLflow tracking server on PostgreSQL, with proxied artifacts and lmops-auth (basic-auth
# plus the authenticated creator of runs and versions: model_registry/mlflow_server_app.py).
source "$(dirname "$0")/common.sh"
AUTH_INI="$SVC/mlflow_auth.ini"
CREDS="$SVC/mlflow_admin_password"

start() {
  if pid_alive mlflow && status; then log "mlflow already up"; return 0; fi
  for f in "$CREDS" "$SVC/mlflow_flask_secret"; do
    [ -f "$f" ] || (umask 077; "$VENV_BIN/python" -c "import secrets; print(secrets.token_urlsafe(24))" >"$f")
  done
  # MLflow stores webhook secrets Fernet-encrypted; without a fixed key each worker makes
  # its own at start, so a secret one worker stored cannot be read by the other (or after
  # a restart) and deliveries fail.
  WEBHOOK_KEY="$SVC/mlflow_webhook_key"
  [ -f "$WEBHOOK_KEY" ] || (umask 077; "$VENV_BIN/python" -c \
    "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())" >"$WEBHOOK_KEY")
  umask 077
  cat >"$AUTH_INI" <<INI
[mlflow]
default_permission = READ
database_uri = postgresql://lmops@127.0.0.1:$PG_PORT/mlflow_auth
admin_username = admin
admin_password = $(cat "$CREDS")
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Without a cache every request re-hashes the password (0.3-0.8 s each here; one
# promotion makes about 30 requests). Grants are still looked up on every request,
# so revoking a role takes effect at once; a changed password within 60 s.
auth_cache_ttl_seconds = 60
INI
  mkdir -p "$SVC/mlflow-artifacts"
  # Registry webhooks (`lmops audit --watch`) go to a receiver on this machine, over
  # plain HTTP like everything in this local stack: MLflow refuses both by default.
  # Each worker caches the webhook list for MLFLOW_WEBHOOK_CACHE_TTL (60 s by default):
  # at 5 s a new subscription is delivered to within 5 s.
  MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true \
  MLFLOW_WEBHOOK_CACHE_TTL=5 MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY="$(cat "$WEBHOOK_KEY")" \
  MLFLOW_AUTH_CONFIG_PATH="$AUTH_INI" MLFLOW_DISABLE_TELEMETRY=true \
    MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$SVC/mlflow_flask_secret")" setsid \
    "$VENV_BIN/mlflow" server --app-name lmops-auth \
      --backend-store-uri "postgresql://lmops@127.0.0.1:$PG_PORT/mlflow" \
      --artifacts-destination "$SVC/mlflow-artifacts" --serve-artifacts \
      --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 2 \
      >>"$LOGS/mlflow.log" 2>&1 &
  echo $! >"$RUN/mlflow.pid"
  wait_for mlflow 120 status
  log "mlflow up on http://127.0.0.1:$MLFLOW_PORT (user admin, password in $CREDS)"
}

stop() { stop_pid mlflow; }

status() { http_ok "http://127.0.0.1:$MLFLOW_PORT/health"; }

"${1:-status}"
