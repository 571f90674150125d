"""`lmops train`: a model from a published dataset version without re-reading sources, and
`--resume` continuing a stopped run in the same MLflow run from its latest checkpoint."""

import mlflow
import pytest
from mlflow import MlflowClient

from conftest import REPO, assert_clean_error, run_cli

SHORT = ["--config", "tiny", "--set", "train.max_steps=12", "--set", "train.checkpoint_every=4",
         "--set", "train.log_every=4", "--set", "train.max_failures=0"]  # fmt: skip


# About 2 min; the default suite keeps resuming covered by the FSDP restart in
# tests/training/test_curves.py. `make test-all` runs this CLI round trip.
@pytest.mark.slow
def test_train_stops_then_resumes_in_the_same_run(tmp_path):
    home = tmp_path / ".lmops"
    assert_clean_error(run_cli(["train", *SHORT], home), "no dataset version is published")
    src = REPO / "platform" / "lmops" / "corpus" / "bilingual.jsonl"
    ingested = run_cli(["ingest", str(src), "--config", "tiny"], home)
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    ds = next(w for w in ingested.stdout.split() if w.startswith("ds-"))

    # The worker dies after step 10 and no restart is allowed: the command fails.
    stopped = run_cli(["train", *SHORT, "--dataset", ds], home, env={"LMOPS_FAULT_AT_STEP": "10"})
    assert_clean_error(stopped, "training failed after 0 restart(s)")
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.get_experiment_by_name("lmops").experiment_id
    (run,) = client.search_runs([exp], "params.`train.max_steps` = '12'")
    assert run.info.status == "FAILED" and run.data.tags["lmops.dataset_version"] == ds

    # Only the config the run started with may resume it.
    other = run_cli(["train", *SHORT, "--set", "train.lr=0.01", "--resume", run.info.run_id], home)
    assert_clean_error(other, "Resume with the same --config and --set options")
    assert_clean_error(run_cli(["train", *SHORT, "--resume", "nope"], home), "no MLflow run 'nope'")

    resumed = run_cli(["train", *SHORT, "--resume", run.info.run_id], home)
    assert resumed.returncode in (0, 4), resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resuming run {run.info.run_id}" in resumed.stdout
    after = client.get_run(run.info.run_id)
    assert after.info.status == "FINISHED"
    # Checkpoints at 4 and 8 (Ray registers one when its controller next polls, so the
    # last before the crash may be either); never from scratch.
    assert after.data.metrics["train/resumed_from_step"] in (4, 8)
    loss_steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert max(loss_steps) == 12 and min(loss_steps) == 4  # one run holds the whole curve
    (mv,) = client.search_model_versions("name = 'lmops-tiny'")
    assert mv.run_id == run.info.run_id
    assert_clean_error(
        run_cli(["train", *SHORT, "--resume", run.info.run_id], home), "nothing to resume"
    )


# About 2 min. The driver itself is killed (not a worker, as above): the run cannot end
# itself, so the next command must.
@pytest.mark.slow
def test_a_training_killed_with_sigkill_is_marked_killed_then_resumes(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import time

    from conftest import LMOPS, cli_env
    from lmops import run_heartbeat as hb

    home = tmp_path / ".lmops"
    src = REPO / "platform" / "lmops" / "corpus" / "bilingual.jsonl"
    assert run_cli(["ingest", str(src), "--config", "tiny"], home).returncode == 0
    long = [*SHORT, "--set", "train.max_steps=100"]
    proc = subprocess.Popen(
        [LMOPS, "train", *long], cwd=tmp_path, env=cli_env(home), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    deadline, run = time.time() + 300, None
    try:
        while time.time() < deadline:  # until a checkpoint past step 4 exists
            time.sleep(1)
            exp = client.get_experiment_by_name("lmops") if (home / "mlflow.db").exists() else None
            runs = client.search_runs([exp.experiment_id]) if exp else []
            hist = client.get_metric_history(runs[0].info.run_id, "train/loss") if runs else []
            if hist and max(m.step for m in hist) >= 8:
                run = runs[0]
                break
        assert run is not None, "training never logged step 8"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert client.get_run(run.info.run_id).info.status == "RUNNING"

    assert run_cli(["models", "list"], home).returncode == 0
    after = client.get_run(run.info.run_id)
    pid = json.loads(after.data.tags[hb.TAG])["pid"]
    assert after.info.status == "KILLED" and pid == proc.pid
    assert f"lmops train --resume {run.info.run_id} --config tiny" in after.data.tags[hb.NOTE_TAG]

    resumed = run_cli(["train", *long, "--resume", run.info.run_id], home)
    assert resumed.returncode in (0, 4), resumed.stdout[-3000:] + resumed.stderr[-3000:]
    done = client.get_run(run.info.run_id)
    assert done.info.status == "FINISHED" and done.data.metrics["train/resumed_from_step"] >= 4
