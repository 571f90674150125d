"""Launch training on Ray: local Ray by default, a cluster when ``RAY_ADDRESS`` is set.

The same call trains the debug preset on a laptop CPU and a GPT-2-size model on
GPUs: only ``TrainConfig`` (workers, GPU, strategy) changes.
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from lmops.config import ModelConfig, TrainConfig
from lmops.errors import LmopsError
from lmops.ray_runtime import ensure_ray


@dataclass(frozen=True)
class TrainOutcome:
    model_dir: Path
    metrics: dict
    checkpoint_path: str
    num_workers: int
    used_gpu: bool


def _wants_gpu(setting: str) -> bool:
    if setting == "yes":
        return True
    if setting == "no":
        return False
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    hf_config_dir: Path,
    token_dir: Path,
    storage: Path,
    run_name: str,
    mlflow_run_id: str | None,
    tracking_uri: str,
    out_dir: Path,
    tokenizer_dir: Path | None = None,
    init_dir: Path | None = None,
) -> TrainOutcome:
    """Fit with a TorchTrainer and write the final checkpoint's HF model to ``out_dir``.

    ``tokenizer_dir`` is needed by the mlm and sft objectives; ``init_dir`` holds the parent
    model's weights (None trains from scratch). A LoRA run's adapter is merged into
    the parent's weights. Rerunning with the same ``run_name`` and ``storage`` resumes
    from the latest checkpoint (Ray Train V2 semantics), so callers pass a name
    unique per attempt.
    """
    import ray.train
    from ray.train.torch import TorchTrainer

    from lmops.training.loop import LoopConfig, train_loop_per_worker

    ensure_ray()
    use_gpu = _wants_gpu(train_cfg.use_gpu)
    _check_capacity(train_cfg.num_workers, use_gpu)
    nonfinite = storage / run_name / "nonfinite_loss.json"
    nonfinite.unlink(missing_ok=True)
    loop_cfg = LoopConfig(
        train=train_cfg,
        seq_len=model_cfg.seq_len,
        hf_config_dir=str(hf_config_dir),
        tokenizer_dir=str(tokenizer_dir) if tokenizer_dir else None,
        token_dir=str(token_dir),
        init_dir=str(init_dir) if init_dir else None,
        mlflow_run_id=mlflow_run_id,
        mlflow_tracking_uri=tracking_uri,
        fault_marker=str(storage / run_name / "fault_injected"),
        nonfinite_marker=str(nonfinite),
    )
    trainer = TorchTrainer(
        functools.partial(train_loop_per_worker, loop_cfg),
        scaling_config=ray.train.ScalingConfig(
            num_workers=train_cfg.num_workers,
            use_gpu=use_gpu,
            resources_per_worker={"GPU": 1} if use_gpu else {"CPU": 1},
        ),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=str(storage),
            failure_config=ray.train.FailureConfig(max_failures=train_cfg.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    )
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as e:
        how = (
            f"`lmops train --resume {mlflow_run_id}` continues from the latest one"
            if mlflow_run_id
            else "a rerun with the same run name continues from the latest one"
        )
        raise LmopsError(
            f"training failed after {train_cfg.max_failures} restart(s): {_one_line(e)}. "
            f"Checkpoints are in {storage / run_name}; {how}"
        ) from None
    metrics = dict(result.metrics or {})
    if nonfinite.exists():
        bad = json.loads(nonfinite.read_text())
        kept = (
            f"the last good checkpoint (step {metrics.get('step', '?')}) is "
            f"{result.checkpoint.path}"
            if result.checkpoint
            else "no checkpoint was written before it"
        )
        raise LmopsError(
            f"training stopped at step {bad['step']}: the loss was {bad['loss']}; {kept}. "
            f"Lower train.lr (now {train_cfg.lr:g}) or raise train.warmup_steps, then rerun"
        )
    if result.checkpoint is None:
        raise LmopsError("training finished without a checkpoint; check train.checkpoint_every")
    _write_model(result.checkpoint, train_cfg, init_dir, out_dir)
    return TrainOutcome(out_dir, metrics, result.checkpoint.path, train_cfg.num_workers, use_gpu)


def _write_model(checkpoint, train_cfg: TrainConfig, init_dir: Path | None, out_dir: Path):
    """The final checkpoint as a plain HF model folder (LoRA: merged into the parent)."""
    from lmops.training import lora
    from lmops.training.loop import SHARDED_DIR, STATE_FILE

    out_dir.mkdir(parents=True, exist_ok=True)
    with checkpoint.as_directory() as d:
        if train_cfg.lora.r:
            import transformers

            from lmops.training.objectives import objective_class

            auto = getattr(transformers, objective_class(train_cfg.objective).auto_class)
            lora.merged(auto.from_pretrained(init_dir), Path(d)).save_pretrained(out_dir)
            return
        for f in Path(d).iterdir():
            if f.name not in (STATE_FILE, SHARDED_DIR):
                shutil.copy2(f, out_dir / f.name)


def _check_capacity(num_workers: int, use_gpu: bool) -> None:
    """Refuse a worker count the Ray cluster cannot place, rather than wait for it forever."""
    import ray

    kind = "GPU" if use_gpu else "CPU"
    have = int(ray.cluster_resources().get(kind, 0))
    if num_workers > have:
        raise LmopsError(
            f"train.num_workers = {num_workers} needs {num_workers} {kind}s (one per worker); "
            f"the Ray cluster has {have}. Lower train.num_workers or add nodes"
        )


def _one_line(error: Exception) -> str:
    """Ray's multi-line failure report as one line: the cause, and the worker's log.

    The CLI prints errors as one line; the full report stays in the worker's log file.
    """
    import re

    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    causes = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b.*:", ln)]
    rest = [ln for ln in lines if not ln.startswith(("Training failed due to", "[Rank"))]
    cause = (causes or rest or ["unknown error"])[-1 if causes else 0]
    if "actor died" in str(error) or "health check failed" in str(error):
        cause = "a worker process died (" + cause.rstrip(".") + ")"
    log = re.search(r"log_file_path='([^']+)'", str(error))
    return cause[:300] + (f"; worker log: {log.group(1)}" if log else "")
