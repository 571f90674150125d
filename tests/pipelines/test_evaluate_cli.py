"""`lmops evaluate` on the tiny run's registered version: records, cache, re-scoring, errors."""

import json

import mlflow
import pytest
from mlflow import MlflowClient

from conftest import REPO, run_cli
from conftest import assert_clean_error as _assert_clean_error


@pytest.fixture(scope="module")
def other_dataset(tiny_run):
    """A second dataset version (the bilingual file alone): another evaluation set."""
    home, _ = tiny_run
    src = REPO / "platform" / "lmops" / "corpus" / "bilingual.jsonl"
    proc = run_cli(["ingest", str(src), "--config", "tiny"], home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return next(w for w in proc.stdout.split() if w.startswith("ds-"))


def _evaluate(home, *args):
    proc = run_cli(["evaluate", "models:/lmops-tiny/1", "--json", *args], home)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_incumbent_is_rescored_when_the_eval_set_changes(tiny_run, other_dataset):
    home, _ = tiny_run
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    own_set = MlflowClient().get_model_version("lmops-tiny", "1").tags["lmops.eval_set"]

    first = _evaluate(home, "--dataset", other_dataset)
    assert not first["cached"] and first["eval_set_id"] != own_set
    assert first["dataset_version"] == other_dataset
    again = _evaluate(home, "--dataset", other_dataset)
    assert again["cached"] and again["run_id"] == first["run_id"]
    assert again["metrics"]["eval/bits_per_byte"] == first["metrics"]["eval/bits_per_byte"]

    run = MlflowClient().get_run(first["run_id"])
    assert run.data.tags["lmops.kind"] == "evaluation"
    assert run.data.tags["lmops.evaluated_model"] == "lmops-tiny/1"
    assert run.data.tags["lmops.eval_set"] == first["eval_set_id"]


def test_own_dataset_evaluation_matches_registered_evidence(tiny_run):
    """Re-scoring v1 on its own eval set reproduces the numbers it was registered with."""
    home, _ = tiny_run
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    tags = MlflowClient().get_model_version("lmops-tiny", "1").tags
    res = _evaluate(home, "--suite", "quality")
    assert res["eval_set_id"] == tags["lmops.eval_set"]
    assert f"{res['metrics']['eval/perplexity']:.6g}" == tags["eval.perplexity"]


def test_unknown_model_is_a_clear_error(tiny_run):
    home, _ = tiny_run
    proc = run_cli(["evaluate", "models:/lmops-tiny/99"], home, timeout=120)
    _assert_clean_error(proc, "does not exist in the registry")


def test_unknown_suite_is_a_clear_error(tiny_run):
    home, _ = tiny_run
    proc = run_cli(["evaluate", "models:/lmops-tiny/1", "--suite", "nope"], home, timeout=120)
    _assert_clean_error(proc, "unknown suite 'nope'")


def test_empty_prompt_list_is_a_clear_error(tiny_run):
    home, _ = tiny_run
    proc = run_cli(
        ["evaluate", "models:/lmops-tiny/1", "--set", "eval.generation.prompts=[]"],
        home,
        timeout=120,
    )
    _assert_clean_error(proc, "eval.generation.prompts")
