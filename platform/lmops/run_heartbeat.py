"""Runs that cannot stay RUNNING: a heartbeat on every run lmops starts, and a reaper.

A process killed with ``kill -9`` (or a lost node) never ends its MLflow run, and a
reviewer in the MLflow UI would see it RUNNING forever. So each run lmops starts
(ingest, training, evaluation) carries ``lmops.heartbeat``, ``{"host", "pid", "time"}``,
rewritten every :data:`HEARTBEAT_S` by one daemon thread for all the
process's runs, as dataset staging folders keep their lease. A run leaves the heartbeat
when it is no longer RUNNING.

:func:`reap_stale_runs` marks KILLED every RUNNING run whose owner is gone: its
heartbeat is older than :data:`LEASE_TTL_S` (any host), or its
process no longer exists on this host. The run's end time is its last heartbeat, and
its description (``mlflow.note.content``, shown in the MLflow UI) says when and why, and,
for a training run, the command that resumes it. Every process that points MLflow at a
home (:func:`lmops.tracking.configure_mlflow`: every command and flow that tracks, the
scheduled ones on a server included) reaps once.
Runs without the tag (not lmops's) are never touched.

Hand-written: MLflow has no liveness for runs (its runs have a status and an end time,
nothing that expires).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime

# Operational timings, shared with dataset staging leases (lmops.data.lease imports
# them: this module is a utility, below the data layer). The TTL is 20 heartbeats: it
# survives missed beats (a loaded host, an NFS hiccup) and clock skew between hosts of
# a few minutes, and a killed run is marked ten minutes after it died.
HEARTBEAT_S = 30.0
LEASE_TTL_S = 600.0

log = logging.getLogger(__name__)

TAG = "lmops.heartbeat"
REAPED_TAG = "lmops.reaped"
NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI

_lock = threading.Lock()
_beating: set[str] = set()
_thread: threading.Thread | None = None
_every = HEARTBEAT_S
_wake = threading.Event()  # set when the interval changes
_reaped_once = False


def _now_tag() -> str:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()})


def keep_alive(run_id: str, heartbeat_s: float | None = None) -> None:
    """Put ``run_id`` on this process's heartbeat, beating now and every ``heartbeat_s``."""
    from mlflow import MlflowClient

    global _thread, _every
    MlflowClient().set_tag(run_id, TAG, _now_tag())
    with _lock:
        _beating.add(run_id)
        if heartbeat_s and heartbeat_s != _every:
            _every = heartbeat_s
            _wake.set()
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_beat, name="run-heartbeat", daemon=True)
            _thread.start()


def _beat() -> None:
    from mlflow import MlflowClient

    while True:
        _wake.wait(_every)
        _wake.clear()
        with _lock:
            runs = list(_beating)
        if not runs:
            continue
        client = MlflowClient()
        for run_id in runs:
            try:
                if client.get_run(run_id).info.status != "RUNNING":
                    with _lock:
                        _beating.discard(run_id)
                    continue
                client.set_tag(run_id, TAG, _now_tag())
            except Exception as e:  # a missed beat; the TTL allows for many
                log.debug("heartbeat of run %s missed: %s", run_id, e)


def _gone(beat: dict, ttl_s: float) -> str | None:
    """Why the owner of a heartbeat is gone, or None while it may be alive."""
    age = time.time() - float(beat.get("time", 0))
    host, pid = beat.get("host"), int(beat.get("pid", 0))
    if host == socket.gethostname() and pid:
        if pid == os.getpid():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"its process {host}:{pid} no longer exists"
        except PermissionError:
            pass  # alive, another user's
    if age > ttl_s:
        return f"no heartbeat from {host}:{pid} for {age / 60:.0f} min"
    return None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def reap_stale_runs(ttl_s: float | None = None, max_runs: int = 500) -> list[str]:
    """Mark KILLED every RUNNING lmops run whose owner is gone; return their ids."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient()
    exp_ids = [e.experiment_id for e in client.search_experiments(ViewType.ACTIVE_ONLY)]
    if not exp_ids:
        return []
    runs = client.search_runs(
        exp_ids,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{TAG}` LIKE '%'",
        max_results=max_runs,
    )
    reaped = []
    for run in runs:
        try:
            beat = json.loads(run.data.tags[TAG])
            why = _gone(beat, ttl_s or LEASE_TTL_S)
        except (ValueError, TypeError, KeyError):
            why = None  # an unreadable heartbeat proves nothing
        if why is None:
            continue
        rid, last = run.info.run_id, float(beat["time"])
        note = (
            f"Marked KILLED by lmops at {_iso(time.time())} (UTC): {why}; "
            f"its last heartbeat was at {_iso(last)}."
        )
        if "lmops.config" in run.data.tags and "train.lr" in run.data.params:
            note += (
                f" It can be resumed from its latest checkpoint: "
                f"`lmops train --resume {rid} --config {run.data.tags['lmops.config']}` "
                "(with the same --set options)."
            )
        old = run.data.tags.get(NOTE_TAG, "")
        # Tags first, status last: a reaper that dies between the two leaves a RUNNING
        # run the next one reaps, never a KILLED run without its reason.
        client.set_tag(rid, REAPED_TAG, note)
        client.set_tag(rid, NOTE_TAG, f"{old}\n\n{note}".strip())
        client.set_terminated(rid, "KILLED", end_time=int(last * 1000))
        log.warning("run %s: %s", rid, note)
        reaped.append(rid)
    return reaped


def reap_once() -> list[str]:
    """Reap once per process (the first call); a failure is logged, never raised.

    In the caller's thread, not a background one: on the embedded SQLite store a second
    writer thread would contend with the command's own writes. Two queries when nothing
    is stale.
    """
    global _reaped_once
    with _lock:
        if _reaped_once:
            return []
        _reaped_once = True
    try:
        return reap_stale_runs()
    except Exception as e:
        log.warning("could not check for stale runs: %s", e)
        return []
