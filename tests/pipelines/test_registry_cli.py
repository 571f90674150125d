"""The registry commands on the tiny run's home, as a user types them (embedded MLflow)."""

import json

from conftest import assert_clean_error, run_cli


def test_approve_promote_show_lineage(tiny_run):
    home, _ = tiny_run
    # The pipeline registered v1 as this OS user: the same identity cannot approve it.
    assert_clean_error(run_cli(["approve", "lmops-tiny", "1"], home), "cannot approve it")
    early = run_cli(["promote", "lmops-tiny", "1", "--to", "production"], home)
    assert early.returncode == 4 and "FAIL approvals by role 'approver': 0" in early.stdout

    alice = {"MLFLOW_TRACKING_USERNAME": "alice"}
    ok = run_cli(["approve", "lmops-tiny", "1", "--comment", "card read"], home, env=alice)
    assert ok.returncode == 0 and "recorded for alice" in ok.stdout, ok.stderr
    moved = run_cli(["promote", "lmops-tiny", "1", "--to", "production"], home)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "ok approvals by role 'approver': 1 (alice)" in moved.stdout
    assert "now holds @production" in moved.stdout

    shown = json.loads(run_cli(["models", "show", "lmops-tiny", "--json"], home).stdout)
    assert set(shown[0]["aliases"]) == {"production", "staging"}
    chain = json.loads(run_cli(["lineage", "lmops-tiny@production", "--json"], home).stdout)
    assert chain["dataset version"].startswith("ds-") and chain["sources"]
    assert chain["data validation"] == "passed" and chain["ingest run"] != "not recorded"
    hist = json.loads(run_cli(["history", "lmops-tiny", "--json"], home).stdout)
    assert [(e["event"], e["alias"], e["passed"]) for e in hist][-3:] == [
        ("gate", "production", False),
        ("approve", "production", True),
        ("gate", "production", True),
    ]


def test_registry_errors_are_one_line(tiny_run):
    home, _ = tiny_run
    assert_clean_error(run_cli(["promote", "lmops-tiny", "1", "--to", "prod"], home), "prod")
    assert_clean_error(run_cli(["promote", "lmops-tiny", "42"], home), "has no version 42")
    assert_clean_error(
        run_cli(["rollback", "lmops-tiny", "--alias", "staging"], home), "nothing to roll back"
    )
    assert_clean_error(run_cli(["lineage", "nope@staging"], home), "not in the registry")


def test_version_flag():
    from pathlib import Path

    proc = run_cli(["--version"], Path("/tmp/unused-lmops-home"))
    assert proc.returncode == 0 and proc.stdout.startswith("lmops ")
