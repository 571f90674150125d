"""A run whose training diverges: one clear line, a non-zero exit, and an MLflow run that
says FAILED (not FINISHED, not RUNNING forever)."""

import mlflow
from mlflow import MlflowClient

from conftest import assert_clean_error, run_cli


def test_a_diverging_run_fails_clearly_and_its_mlflow_run_says_failed(tmp_path):
    home = tmp_path / ".lmops"
    # lr = 1000: a realistic typo for 1e-3; the loss turns NaN within a few steps.
    proc = run_cli(
        ["run", "--config", "tiny", "--set", "train.lr=1000", "--set", "train.max_steps=60",
         "--set", "train.checkpoint_every=2"],
        home,
    )  # fmt: skip
    assert_clean_error(proc, "training stopped at step")
    assert "the last good checkpoint (step" in proc.stderr and "Lower train.lr" in proc.stderr
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("lmops").experiment_id])
    (run,) = [r for r in runs if "train.lr" in r.data.params]  # the training run
    assert run.data.params["train.lr"] == "1000.0"
    assert run.info.status == "FAILED"
    assert not client.search_registered_models()  # nothing was registered
