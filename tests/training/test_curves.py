"""Training metrics as MLflow records them: a committed golden loss curve for the debug
model; 2-worker DDP (gloo) and gradient accumulation matching 1 worker at the same global
batch; FSDP on 2 ranks resuming from its sharded optimizer state on the same curve; MFU
and system metrics reaching the run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
import ray
from mlflow import MlflowClient

from lmops.config import ModelConfig, TrainConfig
from lmops.config.presets import PRESETS
from lmops.training.launch import train

GOLDEN = Path(__file__).with_name("golden_loss_debug.json")


def _model() -> ModelConfig:
    return ModelConfig(**{**PRESETS["debug"], "preset": "debug"})


@pytest.fixture
def setup(tmp_path, local_ray, pattern_inputs):
    """Token shards of a learnable pattern, the debug model's config and an MLflow store."""
    local_ray.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    cfg_dir, shards = pattern_inputs(tmp_path, _model(), period=193, n_train=40_000)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return cfg_dir, shards, uri


def curve(setup, tmp_path, name: str, **train_kw) -> list[float]:
    """Per-step train/loss that rank 0 logged to a fresh MLflow run."""
    return run_metrics(setup, tmp_path, name, **train_kw)["train/loss"]


def _fit(setup, tmp_path, name: str, **train_kw):
    """Train in a fresh MLflow run: (client, run id, outcome)."""
    cfg_dir, shards, uri = setup
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("curves") or client.get_experiment(
        client.create_experiment("curves")
    )
    run_id = client.create_run(exp.experiment_id, run_name=name).info.run_id
    base = dict(
        max_steps=12, batch_size=4, lr=3e-3, warmup_steps=2, log_every=1,
        checkpoint_every=12, val_batches=1, threads_per_worker=1, use_gpu="no", seed=1234,
    )  # fmt: skip
    cfg = TrainConfig(**{**base, **train_kw})
    out = train(
        _model(), cfg, cfg_dir, shards, tmp_path / "ray", name, run_id, uri, tmp_path / name
    )
    return client, run_id, out


def run_metrics(setup, tmp_path, name: str, **train_kw) -> dict[str, list[float]]:
    """Every metric of a fresh training run, each as its values in step order."""
    client, run_id, _ = _fit(setup, tmp_path, name, **train_kw)
    out = {}
    for key in client.get_run(run_id).data.metrics:
        hist = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        out[key] = [m.value for m in hist]
    steps = train_kw.get("max_steps", 12)
    assert len(out["train/loss"]) == steps  # one point per step (log_every=1)
    return out


def test_the_debug_preset_follows_its_golden_loss_curve(setup, tmp_path):
    """Regenerate after an intended change: LMOPS_REGENERATE_GOLDEN=1 pytest this test."""
    got = curve(setup, tmp_path, "golden")
    if os.environ.get("LMOPS_REGENERATE_GOLDEN"):
        GOLDEN.write_text(json.dumps({"train/loss": got}, indent=1) + "\n")
    want = json.loads(GOLDEN.read_text())["train/loss"]
    assert got[-1] < got[0] - 1.0  # it learns: the pattern is predictable
    np.testing.assert_allclose(got, want, rtol=0.02)


# About 1.5 min; the default suite keeps a 2-rank run against 1 worker in the FSDP test
# below. `make test-all` runs this one.
@pytest.mark.slow
def test_two_ddp_workers_and_accumulation_match_one_at_the_same_global_batch(setup, tmp_path):
    one = curve(setup, tmp_path, "one", max_steps=6, batch_size=4, num_workers=1)
    two = curve(setup, tmp_path, "two", max_steps=6, batch_size=2, num_workers=2)
    # The same blocks each step (ranks take disjoint halves of the global batch), the
    # logged loss is averaged over ranks, and DDP averages the gradients: only float
    # summation order differs.
    np.testing.assert_allclose(two, one, rtol=1e-3)
    assert two[-1] < two[0]
    # Two micro-batches of 2 per optimizer step: the same global batch again.
    accum = curve(setup, tmp_path, "accum", max_steps=6, batch_size=2, grad_accum_steps=2)
    np.testing.assert_allclose(accum, one, rtol=1e-3)


def test_mfu_and_system_metrics_reach_the_run(setup, tmp_path):
    from lmops.training.mfu import flops_per_token

    got = run_metrics(setup, tmp_path, "mfu", max_steps=8, peak_tflops=0.5)
    m = _model()
    n_params = _param_count(setup[0])
    per_token = flops_per_token(n_params, m.num_layers, m.hidden_size, m.seq_len)
    expected = [t * per_token / 0.5e12 for t in got["train/tokens_per_s"]]
    np.testing.assert_allclose(got["train/mfu"], expected, rtol=1e-6)
    assert 0 < max(got["train/mfu"]) < 1
    system = [k for k in got if k.startswith("system/node0/")]
    assert "system/node0/cpu_utilization_percentage" in system, sorted(got)


def _param_count(cfg_dir) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(cfg_dir))
    return sum(p.numel() for p in model.parameters())


def test_fsdp_resumes_with_its_sharded_optimizer_state_on_the_same_curve(
    setup, tmp_path, local_ray
):
    one = curve(setup, tmp_path, "one", max_steps=8, batch_size=4, num_workers=1)
    # FSDP2 on 2 CPU ranks (gloo) at the same global batch. A worker dies after step 7;
    # the group restarts from the latest checkpoint Ray had registered (step 4 or 6: see
    # test_train_loop), where each rank saved its own shard of the AdamW moments. The
    # curve stays on the 1-worker one; fresh moments instead move the steps after the
    # restart off it by about 1%.
    local_ray.setenv("LMOPS_FAULT_AT_STEP", "7")
    ray.shutdown()  # the next local Ray passes the variable to its workers
    fsdp = dict(max_steps=8, batch_size=2, num_workers=2, checkpoint_every=2, strategy="fsdp")
    got = _last_per_step(setup, tmp_path, "fsdp-fault", max_failures=1, **fsdp)
    assert (tmp_path / "ray" / "fsdp-fault" / "fault_injected").exists()  # it really fired
    assert got["resumed_from_step"][-1] in (4, 6)
    np.testing.assert_allclose(got["train/loss"], one, rtol=1e-3)
    folder = tmp_path / "ray" / "fsdp-fault"
    checkpoints = sorted(p for p in folder.glob("checkpoint_*") if p.is_dir())
    shards = sorted(p.name for p in (checkpoints[-1] / "sharded").iterdir())
    assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"], shards
    assert (checkpoints[-1] / "model.safetensors").exists()  # the whole model, HF format


def _last_per_step(setup, tmp_path, name: str, **train_kw) -> dict[str, list[float]]:
    """Like run_metrics, for a run that repeats steps after a restart: each step's last value."""
    client, run_id, out = _fit(setup, tmp_path, name, **train_kw)
    metrics = {"resumed_from_step": [out.metrics["resumed_from_step"]]}
    hist = sorted(client.get_metric_history(run_id, "train/loss"), key=lambda m: m.timestamp)
    metrics["train/loss"] = list({m.step: m.value for m in hist}.values())
    return metrics
