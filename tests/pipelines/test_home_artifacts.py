"""Everything of a home, artifacts included, lives under ``LMOPS_HOME`` (issue 10).

MLflow's client-side SQLite store puts artifacts in ``./mlruns`` of the working directory
unless each experiment names its own location. ``run_cli`` starts the CLI in ``home.parent``,
so that is where a stray ``mlruns`` would appear.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from conftest import run_python


def _local(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme in ("", "file"), uri
    return Path(unquote(parsed.path))


@pytest.fixture(scope="module")
def client(tiny_run):
    # An explicit URI, not mlflow.set_tracking_uri: that would export MLFLOW_TRACKING_URI
    # into this pytest process for every test that runs after.
    home, _ = tiny_run
    return MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")


def test_no_mlruns_in_working_directory(tiny_run):
    home, _ = tiny_run
    cwd = home.parent
    stray = [p for p in cwd.rglob("mlruns") if home not in p.parents]
    assert stray == [], f"artifacts outside LMOPS_HOME: {stray}"


def test_every_experiment_keeps_artifacts_in_home(tiny_run, client):
    home, _ = tiny_run
    exps = client.search_experiments(view_type=ViewType.ALL)
    assert {e.name for e in exps} >= {"Default", "lmops"}
    outside = {
        e.name: e.artifact_location
        for e in exps
        if _local(e.artifact_location) != home / "mlartifacts" / e.experiment_id
    }
    assert outside == {}


def test_run_artifacts_under_home(tiny_run, client):
    home, _ = tiny_run
    mv = client.get_model_version("lmops-tiny", "1")
    root = _local(client.get_run(mv.run_id).info.artifact_uri)
    assert root.is_relative_to(home / "mlartifacts"), root
    for name in ("model_card.md", "eval/report.html", "data/manifest.json"):
        assert (root / name).is_file(), f"{name} missing from {root}"


def test_ingest_run_artifacts_under_home(tiny_run, client):
    home, _ = tiny_run
    runs = client.search_runs(
        [client.get_experiment_by_name("lmops").experiment_id], "tags.`lmops.kind` = 'ingest'"
    )
    assert runs
    for run in runs:
        root = _local(run.info.artifact_uri)
        assert root.is_relative_to(home / "mlartifacts"), root
        assert (root / "data" / "manifest.json").is_file()


def test_logged_model_files_under_home(tiny_run, client):
    home, _ = tiny_run
    mv = client.get_model_version("lmops-tiny", "1")
    # The version's source is the LoggedModel (ModelVersion.model_id is unset on this store).
    assert mv.source.startswith("models:/m-"), mv.source
    model = client.get_logged_model(mv.source.removeprefix("models:/"))
    root = _local(model.artifact_location)
    assert root.is_relative_to(home / "mlartifacts"), root
    assert (root / "MLmodel").is_file()
    assert list(root.rglob("*.safetensors")), f"no weights under {root}"


_SCRIPT = """
import json, sys
import mlflow
from lmops.home import prepare_environment
from lmops.tracking import configure_mlflow

h = prepare_environment()
# A home made before the fix: plain MLflow created its experiment with the default location.
mlflow.set_tracking_uri(h.tracking_uri)
mlflow.create_experiment("old")
for name in ("old", "new"):
    configure_mlflow(h, name)
    with mlflow.start_run():
        mlflow.log_text(name, "probe.txt")
exps = mlflow.search_experiments()
json.dump({e.name: e.artifact_location for e in exps}, sys.stdout)
"""


def test_existing_home_is_repaired(tmp_path):
    """A home whose experiments took ``<cwd>/mlruns`` writes new artifacts into the home."""
    home = tmp_path / ".lmops"
    proc = run_python(_SCRIPT, home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    locations = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {k: _local(v).parent for k, v in locations.items()} == {
        "Default": home / "mlartifacts",
        "old": home / "mlartifacts",
        "new": home / "mlartifacts",
    }
    probes = sorted(p.read_text() for p in (home / "mlartifacts").rglob("probe.txt"))
    assert probes == ["new", "old"]
    assert not (tmp_path / "mlruns").exists()
