"""The Ray Train loop on local Ray: a killed worker resumes from the latest checkpoint
with no one stepping in, checkpoints follow their own cadence, and a NaN loss stops
training with a clear error while the last good checkpoint stays; a run from a parent
model starts from the parent's weights."""

from __future__ import annotations

import pytest

from lmops.config import ModelConfig, TrainConfig
from lmops.errors import LmopsError
from lmops.training.launch import train

MODEL = ModelConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=192, seq_len=32)


@pytest.fixture
def inputs(tmp_path, pattern_inputs):
    return pattern_inputs(tmp_path, MODEL, period=97, n_train=20_000)


def fit(inputs, tmp_path, **train):
    cfg_dir, shards = inputs
    base = dict(batch_size=4, warmup_steps=0, val_batches=1, threads_per_worker=1, use_gpu="no")
    return train_with(TrainConfig(**{**base, **train}), cfg_dir, shards, tmp_path)


def train_with(train_cfg, cfg_dir, shards, tmp_path):
    return train(
        MODEL, train_cfg, cfg_dir, shards, tmp_path / "ray", "t", None, "", tmp_path / "out"
    )


def test_a_killed_worker_resumes_from_the_latest_checkpoint(inputs, tmp_path, local_ray):
    # The worker process dies (os._exit) after step 7. Checkpoints come every 2 steps;
    # metrics only at the end (log_every=100): every checkpoint is on a step that logs
    # nothing. Ray registers a checkpoint when its controller next polls the workers, so
    # the one at step 6, reported just before the crash, may not be the one resumed.
    local_ray.setenv("LMOPS_FAULT_AT_STEP", "7")
    out = fit(inputs, tmp_path, max_steps=8, log_every=100, checkpoint_every=2, max_failures=1)
    assert (tmp_path / "ray" / "t" / "fault_injected").exists()  # the fault really fired
    assert out.metrics["step"] == 8
    assert out.metrics["resumed_from_step"] in (4, 6)
    assert (out.model_dir / "model.safetensors").exists()


def test_without_restarts_the_same_fault_fails_clearly(inputs, tmp_path, local_ray):
    local_ray.setenv("LMOPS_FAULT_AT_STEP", "3")
    with pytest.raises(LmopsError, match=r"training failed after 0 restart\(s\)") as err:
        fit(inputs, tmp_path, max_steps=6, log_every=3, checkpoint_every=2, max_failures=0)
    msg = str(err.value)  # one line: the cause and where the full report is
    assert "\n" not in msg and "a worker process died" in msg and "worker log: " in msg


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(inputs, tmp_path, local_ray):
    # A learning rate of 1000 (a realistic typo for 1e-3) diverges to NaN in a few steps.
    with pytest.raises(LmopsError) as err:
        fit(inputs, tmp_path, max_steps=60, lr=1000.0, log_every=10, checkpoint_every=2,
            max_failures=0)  # fmt: skip
    msg = str(err.value)
    assert "the loss was nan" in msg or "the loss was inf" in msg, msg
    stopped = int(msg.split("training stopped at step ")[1].split(":")[0])
    good = int(msg.split("last good checkpoint (step ")[1].split(")")[0])
    assert good < stopped and good % 2 == 0 and "Lower train.lr (now 1000)" in msg
    assert not (tmp_path / "out").exists()  # nothing was published from a diverged run


def test_a_run_from_a_parent_starts_from_its_weights(inputs, tmp_path, local_ray):
    # Continued pre-training / full fine-tuning: `init_dir` holds the parent's HF weights.
    cfg_dir, shards = inputs
    base = dict(batch_size=4, warmup_steps=0, val_batches=2, threads_per_worker=1, use_gpu="no",
                log_every=100, checkpoint_every=100)  # fmt: skip

    def run(name, steps, init_dir=None, lr=1e-3):
        cfg = TrainConfig(max_steps=steps, lr=lr, **base)
        out = tmp_path / name
        return train(MODEL, cfg, cfg_dir, shards, tmp_path / "ray", name, None, "", out,
                     init_dir=init_dir)  # fmt: skip

    parent = run("parent", 40, lr=3e-3)
    child = run("child", 1, init_dir=parent.model_dir, lr=1e-5)
    scratch = run("scratch", 1, lr=1e-5)
    # One tiny step moves neither far: the child is where the parent ended, the scratch
    # model near a uniform guess over 256 tokens (ln 256 = 5.5).
    assert abs(child.metrics["val/loss"] - parent.metrics["val/loss"]) < 0.05
    assert child.metrics["val/loss"] < scratch.metrics["val/loss"] - 1.0
