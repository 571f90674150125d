"""The registry commands on the tiny run's home, as a user types them (embedded MLflow)."""

import json
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from conftest import assert_clean_error, run_cli
from lmops.config import DataConfig
from lmops.data.catalog import load_manifest
from lmops.data.ingest import ingest
from model_registry import tags as T
from model_registry.lineage import lineage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data"))
from corpus_factory import good_doc, write_jsonl  # noqa: E402


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
    assert chain["profile"] == "sample-corpus (extends web)"
    assert chain["profile overrides"] == "none"
    assert len(chain["standard digest"]) == 16 and chain["standard"].startswith("v1 ")
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


@pytest.fixture
def own_store(tmp_path):
    """A registry of this test's own, whatever tracking URI an earlier test set."""
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield
    mlflow.set_tracking_uri(before)


def test_lineage_reads_the_profile_and_digest_from_the_manifest_or_the_tags(tmp_path, own_store):
    src = write_jsonl(tmp_path / "notes.jsonl", [good_doc(i) for i in range(12)])
    cfg = DataConfig(profile="short", quality_overrides={"zh": {"min_chars": 100}})
    root = tmp_path / "datasets"
    rep = ingest([src], cfg.from_config("notes", None), root, data_docs=False)
    std = load_manifest(rep.path)["standard"]
    (root / "ds-old").mkdir()  # a manifest written before the standard was recorded
    (root / "ds-old" / "manifest.json").write_text('{"sources": []}')
    client = MlflowClient()
    client.create_registered_model("notes-lm")
    for tags in (
        {T.DATASET_VERSION: rep.version_id},
        {  # a dataset of another home: only the version's tags know its standard
            T.DATASET_VERSION: "ds-elsewhere",
            T.DATA_STANDARD: "v1 1.1.0",
            T.DATA_PROFILE: "docs",
            T.STANDARD_DIGEST: "0123456789abcdef",
        },
        {T.DATASET_VERSION: "ds-old"},
    ):
        client.create_model_version("notes-lm", str(tmp_path / "model"), tags=tags)

    ingested = lineage("notes-lm/1", root)
    assert (ingested["profile"], ingested["standard digest"]) == ("short", std["digest"])
    assert ingested["standard"] == f"v1 {std['version']}"
    assert ingested["profile overrides"] == ["zh.min_chars 8 -> 100, from config notes"]
    elsewhere = lineage("notes-lm/2", root)
    assert (elsewhere["profile"], elsewhere["standard digest"]) == ("docs", "0123456789abcdef")
    old = lineage("notes-lm/3", root)
    assert old["profile"] == old["standard digest"] == old["standard"] == "not recorded"
