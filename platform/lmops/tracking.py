"""MLflow set-up shared by every stage: the tracking store and the experiment.

Embedded (no ``MLFLOW_TRACKING_URI``, or one naming the home's own database): SQLite at
``LMOPS_HOME/mlflow.db`` and every artifact under ``LMOPS_HOME/mlartifacts/<experiment id>``.
MLflow derives each run's artifact folder, each LoggedModel's
(``models/<model id>/artifacts``) and each trace's from its experiment's artifact location,
so a home-owned experiment location keeps all of them in the home. The prompt registry keeps
its templates in the database, not in artifacts. With another ``MLFLOW_TRACKING_URI`` the
server decides where artifacts live and nothing here touches them.

MLflow's client-side SQLite store has ``./mlruns`` of the working directory as its default
artifact root: the Default experiment 0 gets ``<cwd>/mlruns/0`` when the database is
created, and so does any experiment created without an explicit location. An experiment's
location cannot be changed through MLflow's API, so :func:`keep_artifacts_in_home` rewrites
such defaulted locations in the home's own database. Runs and models logged earlier keep the
location stored with them and stay readable where they are.

MLflow is imported inside the functions: importing this module costs nothing, so the
CLI can start :func:`create_store_in_background` before anything heavy is loaded.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from urllib.parse import unquote, urlparse

from lmops.home import Home, home

log = logging.getLogger(__name__)

# Creates the store as MlflowClient does on first use, at a lower priority than the
# processes the ingest waits for (this one and Prefect's API server).
_CREATE_STORE = (
    "import gc, os, sys; gc.set_threshold(10_000); os.nice(10); "
    "import mlflow; mlflow.MlflowClient(sys.argv[1])"
)
_store_creation: subprocess.Popen | None = None


def create_store_in_background(h: Home) -> None:
    """Create and migrate a new home's MLflow database in a child process, starting now.

    MLflow builds a new SQLite store by running every schema migration on first use, at
    the end of a new home's first ingest: 2 s measured on a quiet 2-core machine, 7 s on
    a loaded one. Started at the beginning instead, it runs while the ingest waits for
    Prefect's API (which migrates its own new database meanwhile). The child has its own
    session, so a Ctrl-C on the CLI does not stop it halfway through the migrations;
    :func:`configure_mlflow` waits for it, so one process at a time migrates the store.
    Does nothing for an existing database or a tracking server.
    """
    global _store_creation
    if _store_creation is None and h.embedded_mlflow and not h.mlflow_db.exists():
        _store_creation = subprocess.Popen(
            [sys.executable, "-c", _CREATE_STORE, h.tracking_uri], start_new_session=True
        )


def configure_mlflow(h: Home, experiment: str) -> str:
    """Point MLflow at the home's store, make ``experiment`` the active one; return its id.

    The first call in a process also marks KILLED any lmops run whose owner died
    (:mod:`lmops.run_heartbeat`).
    """
    import mlflow

    global _store_creation
    if _store_creation is not None:
        # Its exit code does not matter: if it failed, MLflow below does the same work
        # in this process and reports any error as before.
        _store_creation.wait()
        _store_creation = None
    mlflow.set_tracking_uri(h.tracking_uri)
    exp_id = ensure_experiment(experiment, h=h)
    mlflow.set_experiment(experiment_id=exp_id)
    from lmops.run_heartbeat import reap_once

    reap_once()  # runs whose owner died are marked KILLED (lmops.run_heartbeat)
    return exp_id


def ensure_experiment(name: str, tags: dict[str, str] | None = None, h: Home | None = None) -> str:
    """The id of experiment ``name``, created if missing, with its artifacts in the home.

    Use this instead of ``create_experiment`` for any experiment lmops writes to, so its
    runs never take MLflow's working-directory default. Assumes the tracking URI is set.
    """
    import mlflow
    from mlflow import MlflowClient

    h = h or home()
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            exp_id = client.create_experiment(name, tags=tags)
        except mlflow.exceptions.MlflowException:  # created concurrently
            exp_id = client.get_experiment_by_name(name).experiment_id
    else:
        exp_id = exp.experiment_id
    if h.embedded_mlflow:
        keep_artifacts_in_home(h)
    return exp_id


def keep_artifacts_in_home(h: Home) -> list[str]:
    """Move defaulted experiment locations to ``mlartifacts/<id>``; return the ids moved.

    Only locations of MLflow's default shape, a local ``.../mlruns/<id>``, are rewritten:
    a location someone chose on purpose is left alone. Writing MLflow's ``experiments``
    table directly is the one way to do this, and this database belongs to the home.
    """
    if not h.mlflow_db.exists():
        return []
    moved = []
    with closing(sqlite3.connect(h.mlflow_db, timeout=60)) as con, con:
        rows = con.execute("SELECT experiment_id, artifact_location FROM experiments").fetchall()
        for exp_id, location in rows:
            target = h.artifacts / str(exp_id)
            path = _local_path(location)
            if path is None or path.name != str(exp_id) or path.parent.name != "mlruns":
                continue
            con.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                (target.as_uri(), exp_id),
            )
            moved.append(str(exp_id))
            log.info("experiment %s: artifact location %s -> %s", exp_id, location, target)
    return moved


def _local_path(location: str | None) -> Path | None:
    """The folder a local artifact location names, or None for a remote one."""
    if not location:
        return None
    parsed = urlparse(location)
    if parsed.scheme == "":
        return Path(location)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(unquote(parsed.path))
    return None
