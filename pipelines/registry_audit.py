"""Prefect flow ``registry-audit``: find aliases moved outside lmops, and undo them.

Scheduled (``prefect.yaml``, every minute, ``revert`` on) it polls every alias of every
model. ``lmops audit --watch`` runs the same check in a loop and also listens for
MLflow's registry webhooks (``model_version_alias.created``), so a move is reverted
seconds after it happens; polling stays on, since MLflow delivers a webhook at most
three times and only logs a failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prefect import flow, task

from model_registry.audit import Finding, audit_model, models

log = logging.getLogger("lmops.audit")
WEBHOOK_EVENTS = ["model_version_alias.created"]
MAX_SKEW_S = 300  # a delivery older than this is refused, as Standard Webhooks advise


@task(name="audit-model")
def audit_model_task(name: str, revert: bool, files: bool) -> list[Finding]:
    """Check every alias of one model; revert the unverified ones if asked."""
    return audit_model(name, revert, files)


@flow(name="registry-audit")
def registry_audit_flow(revert: bool = True, files: bool = False) -> list[dict]:
    """Every alias of every model must be held by a verified, signed move.

    ``files`` also downloads and re-hashes every holder's files.
    """
    from lmops.home import prepare_environment

    prepare_environment()
    found = [f for name in models() for f in audit_model_task(name, revert, files)]
    for f in found:
        (log.info if f.verified else log.warning)(f.line())
    return [f.__dict__ for f in found]


def check_signature(secret: str, headers, body: bytes) -> str | None:
    """Why a delivery is not from MLflow with our secret, or None when it is.

    MLflow signs ``"{delivery id}.{timestamp}.{body}"`` with HMAC-SHA256
    (mlflow/webhooks/delivery.py); the standard library's ``hmac`` is the check.
    """
    delivery, stamp = headers.get("X-MLflow-Delivery-Id"), headers.get("X-MLflow-Timestamp")
    sig = headers.get("X-MLflow-Signature", "")
    if not delivery or not stamp or not sig.startswith("v1,"):
        return "missing X-MLflow-Delivery-Id, X-MLflow-Timestamp or a v1 signature"
    try:
        if abs(time.time() - int(stamp)) > MAX_SKEW_S:
            return f"timestamp {stamp} is more than {MAX_SKEW_S} s away"
    except ValueError:
        return f"timestamp {stamp!r} is not a number"
    content = f"{delivery}.{stamp}.".encode() + body
    want = base64.b64encode(hmac.new(secret.encode(), content, hashlib.sha256).digest())
    return None if hmac.compare_digest(want, sig[3:].encode()) else "signature does not match"


class WebhookReceiver:
    """Receives MLflow's registry webhooks; queues the model of each new delivery."""

    def __init__(self, secret: str, host: str = "127.0.0.1", port: int = 0, remember: int = 4096):
        self.secret = secret
        self.todo: queue.Queue[str] = queue.Queue()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()
        self.refused = 0
        self.repeated = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.deliver(self.headers, body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):  # one line per refusal is logged by deliver()
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/mlflow-webhook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def deliver(self, headers, body: bytes) -> int:
        why = check_signature(self.secret, headers, body)
        if why:
            self.refused += 1
            log.warning("webhook delivery refused: %s", why)
            return 401
        delivery = headers.get("X-MLflow-Delivery-Id")
        with self._lock:  # MLflow retries on 5xx/429: the same id may come again
            if delivery in self._seen:
                self.repeated += 1
                return 200
            self._seen[delivery] = None
            while len(self._seen) > self._remember:
                self._seen.popitem(last=False)
        try:
            name = json.loads(body)["data"]["name"]
        except (ValueError, KeyError, TypeError):
            return 400
        self.todo.put(name)
        return 200

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def subscribe(url: str, secret: str) -> str:
    """Create (or update) the MLflow webhook; the reason when the store does not allow one."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    name = "lmops-registry-audit"
    try:
        for hook in client.list_webhooks():
            if hook.name == name:
                client.update_webhook(
                    hook.webhook_id, url=url, secret=secret, events=WEBHOOK_EVENTS
                )
                return ""
        client.create_webhook(name=name, url=url, events=WEBHOOK_EVENTS, secret=secret)
    except MlflowException as e:
        return e.message.splitlines()[0]
    except Exception as e:  # an embedded store has no server to deliver from
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return ""


def watch(
    revert: bool,
    interval_s: float,
    receiver: WebhookReceiver | None = None,
    stop: threading.Event | None = None,
    on_finding=None,
    files: bool = False,
) -> None:
    """Poll every ``interval_s``; audit a model at once when a webhook names it."""
    stop = stop or threading.Event()
    report = on_finding or (lambda f: None)
    next_poll = 0.0
    while not stop.is_set():
        now = time.monotonic()
        names: set[str] = set()
        if now >= next_poll:
            names |= set(models())
            next_poll = now + interval_s
        if receiver is not None:
            try:
                names.add(receiver.todo.get(timeout=min(0.2, interval_s)))
                while True:
                    names.add(receiver.todo.get_nowait())
            except queue.Empty:
                pass
        else:
            stop.wait(min(0.2, interval_s))
        for name in sorted(names):
            for f in audit_model(name, revert, files):
                if not f.verified:
                    report(f)
