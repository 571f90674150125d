"""The history readers: the SQL reader the CLI uses must equal MLflow's own client.

``lmops history`` reads the embedded store with SQL (importing mlflow costs more than
the command's 1 s budget), so these tests hold that reader to ``MlflowClient`` on a
real store: same events, same order, deleted runs left out.
"""

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.store.db.utils import _get_latest_schema_revision

from model_registry import history
from model_registry import tags as T
from model_registry.history_read import (
    KNOWN_SCHEMAS,
    events,
    read_client,
    read_sqlite,
    sqlite_path,
)


def test_the_sql_reader_knows_the_installed_mlflow_schema():
    """Fails on an MLflow upgrade until read_sqlite is checked against the new schema."""
    assert _get_latest_schema_revision() in KNOWN_SCHEMAS


@pytest.fixture
def store(tmp_path, monkeypatch):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return db


def _event(model, version, t, **kw):
    base = dict(event="gate", model=model, version=version, alias="staging", actor="ci")
    return history.Event(**{**base, "verified": False, "time": t, **kw})


def test_sql_and_client_readers_agree(store):
    t0 = 1_790_000_000.0
    written = [
        history.record(_event("m", "1", t0, to_version="1", reasons=("ok a", "FAIL b"))),
        history.record(_event("other", "1", t0 + 1)),
        history.record(_event("m", "2", t0 + 2, passed=False, policy="staging@1")),
        # Same start time as the previous one: the run id breaks the tie, as in MLflow.
        history.record(_event("m", "2", t0 + 2, event="rollback", alias="production")),
        history.record(_event("m", "3", t0 + 3)),
    ]
    history.record(
        _event("m", "1", t0 + 4, event="approve", comment="read the card"),
        experiment=history.APPROVALS_EXPERIMENT,
    )
    MlflowClient().delete_run(written[-1].run_id)  # a deleted event is not history

    for version in (None, "2"):
        by_sql = read_sqlite(store, "m", version, history.AUDIT_EXPERIMENT)
        assert by_sql == read_client("m", version, history.AUDIT_EXPERIMENT)
        assert by_sql == events("m", version, history.AUDIT_EXPERIMENT)
    full = read_sqlite(store, "m", None, history.AUDIT_EXPERIMENT)
    expected = [written[0], *sorted(written[2:4], key=lambda e: e.run_id)]
    assert full == expected
    assert full[0].reasons == ("ok a", "FAIL b")
    assert [e.passed for e in full if e.version == "2" and e.event == "gate"] == [False]
    (approval,) = read_sqlite(store, "m", "1", history.APPROVALS_EXPERIMENT)
    assert approval.comment == "read the card"
    assert read_sqlite(store, "m", None, "no-such-experiment") == []


def test_the_sql_reader_steps_aside_where_it_does_not_apply(store, tmp_path):
    history.record(_event("m", "1", 1_790_000_000.0))
    import sqlite3

    con = sqlite3.connect(store)
    con.execute("UPDATE alembic_version SET version_num = 'not-a-known-revision'")
    con.commit()
    con.close()
    assert read_sqlite(store, "m", None, history.AUDIT_EXPERIMENT) is None
    assert read_sqlite(tmp_path / "absent.db", "m", None, history.AUDIT_EXPERIMENT) == []
    (tmp_path / "not-mlflow.db").write_bytes(b"")
    assert read_sqlite(tmp_path / "not-mlflow.db", "m", None, "x") is None


def test_sqlite_uris_are_read_as_sqlalchemy_reads_them():
    assert sqlite_path("sqlite:////abs/dir/mlflow.db") == Path("/abs/dir/mlflow.db")
    assert sqlite_path("sqlite:///rel.db") == Path("rel.db")
    assert sqlite_path("sqlite:///a%20b.db?timeout=5") == Path("a b.db")
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql://u@h/db") is None


def test_a_record_always_fits_a_tag_and_stays_json():
    huge = _event("m", "1", 0.0, reasons=tuple("FAIL " + "x" * 3000 for _ in range(40)))
    text = history.record_json(huge)
    assert len(text) <= history.RECORD_LIMIT
    fields = json.loads(text)
    assert fields["reasons"] and all(r.endswith("[cut]") for r in fields["reasons"])
    small = _event("m", "1", 5.0, reasons=("ok 雅",), comment="fine", run_id="r")
    back = history.from_tags(
        {T.EVENT_RECORD: history.record_json(small), **_search_tags(small)}, 5000, "r"
    )
    assert back == small


def _search_tags(ev):
    return {
        T.EVENT: ev.event,
        T.EVENT_MODEL: ev.model,
        T.EVENT_VERSION: ev.version,
        T.EVENT_ALIAS: ev.alias,
        T.EVENT_ACTOR: ev.actor,
    }


def test_a_run_without_a_record_reads_as_not_passed_and_unverified():
    ev = history.from_tags({T.EVENT: "approve", T.EVENT_ACTOR: "carol"}, 0, "r")
    assert (ev.event, ev.actor, ev.passed, ev.verified) == ("approve", "carol", False, False)
    garbled = history.from_tags({T.EVENT_RECORD: "{not json"}, 0, "r")
    assert not garbled.passed and garbled.reasons == ()


def test_the_history_command_does_not_import_mlflow(store, tmp_path):
    """The point of the SQL reader: the command stays under its 1 s budget."""
    history.record(_event("m", "1", 1_790_000_000.0, to_version="1"))
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('mlflow imported:', 'mlflow' in sys.modules, "
        "file=sys.stderr))\n"
        "sys.argv = ['lmops', 'history', 'm', '--json']\n"
        "from pipelines.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert "mlflow imported: False" in done.stderr
    (ev,) = json.loads(done.stdout)
    assert (ev["model"], ev["version"], ev["to_version"]) == ("m", "1", "1")
