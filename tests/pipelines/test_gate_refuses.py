"""A realistic bad candidate: training stopped after one step. The @staging gate refuses it."""

import json

import mlflow
import pytest
from mlflow import MlflowClient

from conftest import run_cli


@pytest.fixture(scope="module")
def refused(tiny_run):
    home, _ = tiny_run  # same home: the dataset and tokenizer are reused
    proc = run_cli(
        [
            "run",
            "--config",
            "tiny",
            "--set",
            "train.max_steps=1",
            "--set",
            "registry.model_name=lmops-one-step",
        ],
        home,
    )
    return home, proc


def test_run_exits_4_with_the_reason(refused):
    _, proc = refused
    assert proc.returncode == 4, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "NOT promoted" in proc.stdout
    assert "FAIL eval/bits_per_byte" in proc.stdout  # no better than a unigram model
    assert "gate refused lmops-one-step v1" in proc.stderr and "Traceback" not in proc.stderr


def test_refusal_is_on_record_and_the_alias_did_not_move(refused):
    home, _ = refused
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    client = MlflowClient()
    mv = client.get_model_version("lmops-one-step", "1")
    assert mv.tags["lmops.gate.staging"] == "refused" and not mv.aliases
    hist = run_cli(["history", "lmops-one-step", "--json"], home)
    (event,) = json.loads(hist.stdout)
    assert event["event"] == "gate" and event["passed"] is False and event["to_version"] == ""
    assert event["policy"] == "staging@1" and event["evidence_digest"]
