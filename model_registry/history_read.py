"""Reading registry events fast enough for ``lmops history`` (at most 1 s over 1,000).

Importing ``mlflow`` alone takes over a second on 2 cores, more than the whole budget,
so the command reads without it where it can:

* a tracking server: MLflow's public REST API (``runs/search``) through ``requests``;
* the embedded SQLite store: a read-only SQL query, but only on a schema revision this
  module was checked against (``KNOWN_SCHEMAS``; a test compares it with the installed
  MLflow and the result with the client's). MLflow's tables are not a public API, so
  any other revision, or another database, goes through ``MlflowClient``;
* anything else: ``MlflowClient``.

All three return the same events in the same order (a test holds them to it).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from urllib.parse import unquote

from model_registry import tags as T
from model_registry.history import AUDIT_EXPERIMENT, Event, from_tags

# Alembic revisions of MLflow's tracking schema whose runs/tags/experiments tables
# read_sqlite() was checked against (tests/model_registry/test_history_read.py).
KNOWN_SCHEMAS = frozenset({"dc11669786a5"})
PAGE = 5000


def events(
    model: str, version: str | None = None, experiment: str = AUDIT_EXPERIMENT
) -> list[Event]:
    """Events of ``model`` (one version, if given), oldest first."""
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        return read_rest(uri, model, version, experiment)
    db = sqlite_path(uri)
    if db is not None:
        found = read_sqlite(db, model, version, experiment)
        if found is not None:
            return found
    return read_client(model, version, experiment)


def tracking_uri() -> str:
    if "mlflow" in sys.modules:  # set_tracking_uri() in this process wins, as in MLflow
        import mlflow

        return mlflow.get_tracking_uri()
    from lmops.home import home

    return home().tracking_uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, as SQLAlchemy reads it.

    ``sqlite:////abs/x.db`` is absolute and ``sqlite:///x.db`` relative.
    """
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///") :].split("?", 1)[0])
    return Path(path) if path and path != ":memory:" else None


def _filter(model: str, version: str | None) -> str:
    flt = f"tags.`{T.EVENT_MODEL}` = '{model}'"
    if version is not None:
        flt += f" and tags.`{T.EVENT_VERSION}` = '{version}'"
    return flt


def read_client(model: str, version: str | None, experiment: str) -> list[Event]:
    from mlflow import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    out, token = [], None
    while True:
        page = client.search_runs(
            [exp.experiment_id],
            _filter(model, version),
            order_by=["attributes.start_time ASC"],
            max_results=PAGE,
            page_token=token,
        )
        out += [from_tags(r.data.tags, r.info.start_time, r.info.run_id) for r in page]
        token = page.token
        if not token:
            return out


_SQL = """
SELECT r.run_uuid, r.start_time, t.key, t.value
FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid
WHERE r.experiment_id = (
        SELECT experiment_id FROM experiments WHERE name = ? AND workspace = 'default')
  AND r.lifecycle_stage = 'active'
  AND r.run_uuid IN (SELECT run_uuid FROM tags WHERE key = ? AND value = ?)
  {version}
ORDER BY r.start_time, r.run_uuid
"""


def read_sqlite(db: Path, model: str, version: str | None, experiment: str) -> list[Event] | None:
    """The events from MLflow's SQLite store, or None where this reader does not apply.

    Hand-written SQL rather than MLflow's store because importing MLflow costs more
    than the whole command may take (see the module docstring). Read-only, so a
    running pipeline writing to the store is never disturbed.
    """
    if not db.is_file():
        return []  # no store yet, so no events (the client would create one)
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        try:
            (revision,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
        except (sqlite3.Error, TypeError):
            return None
        if revision not in KNOWN_SCHEMAS:
            return None
        args = [experiment, T.EVENT_MODEL, model]
        clause = ""
        if version is not None:
            clause = "AND r.run_uuid IN (SELECT run_uuid FROM tags WHERE key = ? AND value = ?)"
            args += [T.EVENT_VERSION, version]
        rows = con.execute(_SQL.format(version=clause), args).fetchall()
    finally:
        con.close()
    runs: dict[str, tuple[int, dict[str, str]]] = {}
    for run_id, start_ms, key, value in rows:
        runs.setdefault(run_id, (start_ms, {}))[1][key] = value or ""
    return [from_tags(tags, start_ms, run_id) for run_id, (start_ms, tags) in runs.items()]


def read_rest(uri: str, model: str, version: str | None, experiment: str) -> list[Event]:
    """The same query through the tracking server's REST API."""
    import requests

    from lmops.errors import LmopsError

    s = requests.Session()
    user, password = (
        os.environ.get("MLFLOW_TRACKING_USERNAME"),
        os.environ.get("MLFLOW_TRACKING_PASSWORD"),
    )
    if user:
        s.auth = (user, password or "")
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        s.headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
    api = uri.rstrip("/") + "/api/2.0/mlflow"

    def call(method: str, path: str, **kw) -> requests.Response:
        try:
            r = s.request(method, api + path, timeout=60, **kw)
        except requests.RequestException as e:
            raise LmopsError(f"cannot reach the tracking server at {uri}: {e}") from None
        if r.status_code in (401, 403):
            raise LmopsError(
                f"the tracking server at {uri} refused the history query ({r.status_code}): "
                "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
            )
        return r

    r = call("GET", "/experiments/get-by-name", params={"experiment_name": experiment})
    if r.status_code == 404:
        return []
    if not r.ok:
        raise LmopsError(f"tracking server at {uri}: {r.status_code} {r.text[:200]}")
    exp_id = r.json()["experiment"]["experiment_id"]
    out, token = [], None
    while True:
        body = {
            "experiment_ids": [exp_id],
            "filter": _filter(model, version),
            "order_by": ["attributes.start_time ASC"],
            "max_results": PAGE,
            **({"page_token": token} if token else {}),
        }
        r = call("POST", "/runs/search", json=body)
        if not r.ok:
            raise LmopsError(f"tracking server at {uri}: {r.status_code} {r.text[:200]}")
        page = r.json()
        for run in page.get("runs", []):
            tags = {t["key"]: t.get("value", "") for t in run.get("data", {}).get("tags", [])}
            info = run["info"]
            out.append(from_tags(tags, int(info["start_time"]), info["run_id"]))
        token = page.get("next_page_token")
        if not token:
            return out
