"""Alias moves as Prefect events, so serving can follow them.

Every move of an alias emits ``lmops.alias.moved`` about the resource
``mlflow.registered_model.<name>``, labelled ``lmops.alias``, ``lmops.from_version``
("" when the alias was unset), ``lmops.to_version`` and ``lmops.actor``; the payload
repeats them with the reason. A Prefect automation (trigger on the event name, match
``lmops.alias: production``) or a ``prefect.events.clients.PrefectEventSubscriber``
can then reload the serving model. The MLflow history stays the record; the event is a
notification and losing one loses no history.

``prefect.events.emit_event`` only queues the event: a background worker sends it over a
websocket and, when the API is unreachable, logs the failure in that worker, so the
caller is never failed by the network. It raises only ``EventTooLarge``, which is caught
and logged here; an invalid event is logged by Prefect itself and dropped.

Embedded (no ``PREFECT_API_URL``, ephemeral mode allowed) and outside a flow run, the
first ``emit_event`` of a process starts Prefect's temporary API server, a uvicorn
subprocess on ``PREFECT_HOME``'s SQLite database, and blocks until it answers (40 s
measured on a busy 2-core machine). If it is not up within
``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (20, counted in 0.1 s sleeps, so
longer in wall time: 30 s there) Prefect logs "Error emitting event" and returns None.
When it is up, the worker sends the event there (the queue is drained at exit) and it
lands in that database, but the server stops with the process: no automation or
subscriber outlives it to see the event. Hence this module emits only when a Prefect API
is configured or a flow or task run is active (inside a run the temporary server is
already running and is reused: 0.03 s measured), and otherwise logs that it skipped.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.events import Event, emit_event
from prefect.exceptions import EventTooLarge
from prefect.settings import PREFECT_API_URL

log = logging.getLogger(__name__)

ALIAS_MOVED = "lmops.alias.moved"
MAX_REASON = 4000  # characters; a reason is one line or a few, never megabytes


def resource_id(name: str) -> str:
    return f"mlflow.registered_model.{name}"


def _prefect_api_available() -> bool:
    return bool(PREFECT_API_URL.value()) or bool(FlowRunContext.get() or TaskRunContext.get())


def emit_alias_moved(
    name: str,
    alias: str,
    from_version: str | None,
    to_version: str,
    actor: str,
    reason: str,
) -> Event | None:
    """Emit ``lmops.alias.moved``; returns the queued event, or None when not emitted."""
    if not _prefect_api_available():
        log.info(
            "%s @%s -> v%s: no Prefect API (PREFECT_API_URL unset, no flow run); "
            "alias event not emitted",
            name,
            alias,
            to_version,
        )
        return None
    labels = {
        "lmops.alias": alias,
        "lmops.from_version": from_version or "",
        "lmops.to_version": str(to_version),
        "lmops.actor": actor,
    }
    try:
        return emit_event(
            ALIAS_MOVED,
            resource={
                "prefect.resource.id": resource_id(name),
                "prefect.resource.name": name,
                **labels,
            },
            payload={
                "model": name,
                "alias": alias,
                "from_version": labels["lmops.from_version"],
                "to_version": labels["lmops.to_version"],
                "actor": actor,
                "reason": reason[:MAX_REASON],
            },
        )
    except EventTooLarge as e:
        log.warning("alias event for %s @%s not emitted: %s", name, alias, e)
        return None
