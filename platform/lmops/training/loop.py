"""The per-worker training loop that Ray Train's TorchTrainer runs on every rank.

Rank 0 logs metrics to MLflow itself: Ray Train V2 keeps no metrics without a
checkpoint and its RunConfig takes no MLflow callback. Checkpoints hold the
model in Hugging Face format (safetensors) plus the optimizer state, the step and
rank 0's torch RNG state, so a restarted worker group resumes where the last
checkpoint left off. The learning rate and the data order are pure functions of the
step, so they need no state of their own.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmops.config import TrainConfig
from lmops.training.mfu import flops_per_token, mfu, peak_flops
from lmops.training.schedule import block_indices, lr_at

STATE_FILE = "trainer_state.pt"


@dataclass(frozen=True)
class LoopConfig:
    """What crosses into every Ray Train worker: typed and frozen, not a dict."""

    train: TrainConfig
    seq_len: int
    hf_config_dir: str
    token_dir: str
    mlflow_run_id: str | None
    mlflow_tracking_uri: str
    fault_marker: str
    nonfinite_marker: str


def _device() -> torch.device:
    import ray.train.torch

    return ray.train.torch.get_device()


def _batch(data: np.ndarray, starts: np.ndarray, seq_len: int, device) -> torch.Tensor:
    rows = np.stack([data[s : s + seq_len].astype(np.int64) for s in starts])
    return torch.from_numpy(rows).to(device)


def _unwrap(model):
    return getattr(model, "module", model)


def _full_state_dict(model, strategy: str):
    if strategy != "fsdp":
        return _unwrap(model).state_dict()
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    cfg = FullStateDictConfig(offload_to_cpu=True, rank0_only=True)
    with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT, cfg):
        return model.state_dict()


@torch.no_grad()
def _val_loss(model, data: np.ndarray, cfg: LoopConfig, device, amp) -> float:
    model.eval()
    seq, bs = cfg.seq_len, cfg.train.batch_size
    n_blocks = (len(data) - 1) // seq
    losses = []
    for i in range(min(cfg.train.val_batches, max(1, n_blocks // bs))):
        starts = (np.arange(bs) + i * bs) % max(1, n_blocks) * seq
        x = _batch(data, starts, seq, device)
        with amp:
            losses.append(model(input_ids=x, labels=x).loss.float().item())
    model.train()
    return float(np.mean(losses))


def _mlflow_logger(cfg: LoopConfig, rank: int):
    """A function that logs a metrics dict at a step to the pipeline's MLflow run (rank 0)."""
    if rank != 0 or not cfg.mlflow_run_id:
        return lambda metrics, step: None
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(tracking_uri=cfg.mlflow_tracking_uri)

    def log(metrics: dict, step: int) -> None:
        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
        for attempt in range(6):  # the tracking server may be restarting: ~1 minute
            try:
                client.log_batch(cfg.mlflow_run_id, metrics=batch)
                return
            except Exception as e:
                transient = isinstance(e, OSError) or "onnect" in str(e) or "503" in str(e)
                if not transient or attempt == 5:
                    print(
                        f"lmops: metrics at step {step} not logged to MLflow: {e}", file=sys.stderr
                    )
                    return
                time.sleep(2**attempt)

    return log


def train_loop_per_worker(cfg: LoopConfig) -> None:
    import ray.train

    ctx = ray.train.get_context()
    monitor = _system_metrics(cfg, ctx)
    try:
        _train(cfg, ctx)
    finally:
        if monitor is not None:
            monitor.finish()


def _system_metrics(cfg: LoopConfig, ctx):
    """MLflow's system-metrics monitor on the first worker of each node.

    CPU, memory, disk and network every 10 s (``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL``),
    and GPU use where ``nvidia-ml-py`` is installed, as ``system/node<N>/…`` metrics.
    """
    if not (cfg.train.system_metrics and cfg.mlflow_run_id) or ctx.get_local_rank() != 0:
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(
        cfg.mlflow_run_id,
        resume_logging=True,  # a restarted worker group continues the steps
        node_id=f"node{ctx.get_node_rank()}",
        tracking_uri=cfg.mlflow_tracking_uri,
    )
    monitor.start()
    return monitor


def _train(cfg: LoopConfig, ctx) -> None:
    import ray.train
    import ray.train.torch
    from transformers import AutoConfig, AutoModelForCausalLM

    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    threads = cfg.train.threads_per_worker or max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.train.seed)
    device = _device()
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if use_bf16
        else torch.autocast("cpu", enabled=False)
    )

    hf_config = AutoConfig.from_pretrained(cfg.hf_config_dir)
    model = AutoModelForCausalLM.from_config(hf_config)
    start_step, opt_state = 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            model = AutoModelForCausalLM.from_pretrained(d)
            state = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=False)
            start_step, opt_state = state["step"], state.get("optimizer")
            if "rng" in state:  # dropout and any sampling continue where they stopped
                torch.set_rng_state(state["rng"])
    per_token = flops_per_token(
        sum(p.numel() for p in model.parameters()),  # before FSDP shards them
        hf_config.num_hidden_layers,
        hf_config.hidden_size,
        cfg.seq_len,
    )
    peak = peak_flops(
        cfg.train.peak_tflops, torch.cuda.get_device_name(device) if device.type == "cuda" else None
    )
    model = ray.train.torch.prepare_model(model, parallel_strategy=cfg.train.strategy)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.train.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.train.lr,
        betas=(0.9, 0.95),
        fused=device.type == "cuda",
    )
    if opt_state is not None and cfg.train.strategy != "fsdp":
        optimizer.load_state_dict(opt_state)

    shards = Path(cfg.token_dir)
    dtype = json.loads((shards / "meta.json").read_text())["dtype"]
    train = np.memmap(shards / "train.bin", dtype=dtype, mode="r")
    val = np.memmap(shards / "val.bin", dtype=dtype, mode="r")
    log = _mlflow_logger(cfg, rank)
    seq, bs, total = cfg.seq_len, cfg.train.batch_size, cfg.train.max_steps
    accum = cfg.train.grad_accum_steps
    tokens_per_step = seq * bs * world * accum
    fail_at = int(os.environ.get("LMOPS_FAULT_AT_STEP", "0"))
    window_start, window_loss = time.perf_counter(), []

    model.train()
    for step in range(start_step, total):
        lr = lr_at(step, cfg.train.lr, cfg.train.warmup_steps, total, cfg.train.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # Gradient accumulation: micro-batch m of step s takes the blocks a run without
        # accumulation would take at virtual step s * accum + m, so the data order and the
        # global batch do not depend on how the batch is split.
        total_loss = None
        for micro in range(accum):
            starts = block_indices(
                len(train), seq, step * accum + micro, bs, rank, world, cfg.train.seed
            )
            x = _batch(train, starts, seq, device)
            last = micro == accum - 1
            # DDP all-reduces gradients on every backward; only the last micro-batch's must.
            sync = contextlib.nullcontext() if last or world == 1 else model.no_sync()
            with sync:
                with amp:
                    loss = model(input_ids=x, labels=x).loss / accum
                loss.backward()
            total_loss = loss.detach() if total_loss is None else total_loss + loss.detach()
        loss_value = _global_mean(total_loss, world)
        if not math.isfinite(loss_value):
            # Stop before the optimiser applies a NaN/inf update, so the latest checkpoint
            # stays the last good one. A file, not a report: Ray Train V2 keeps no metrics
            # without a checkpoint. launch.train turns it into the error.
            if rank == 0:
                marker = Path(cfg.nonfinite_marker)
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(json.dumps({"step": step + 1, "loss": repr(loss_value)}))
            return
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        window_loss.append(loss_value)
        _maybe_inject_fault(step, fail_at, cfg)

        done = step + 1
        logging = done % cfg.train.log_every == 0 or done == total
        checkpointing = done % cfg.train.checkpoint_every == 0 or done == total
        if not (logging or checkpointing):
            continue
        metrics = {"step": done, "resumed_from_step": start_step}
        if logging:
            elapsed = time.perf_counter() - window_start
            metrics |= {
                "train/loss": float(np.mean(window_loss)),
                "train/lr": lr,
                "train/grad_norm": float(grad_norm),
                "train/tokens_per_s": tokens_per_step * len(window_loss) / max(elapsed, 1e-9),
                "val/loss": _val_loss(model, val, cfg, device, amp),
            }
            metrics["val/perplexity"] = float(np.exp(min(metrics["val/loss"], 50)))
            if peak:
                metrics["train/mfu"] = mfu(metrics["train/tokens_per_s"], per_token, peak, world)
            log({k: v for k, v in metrics.items() if "/" in k}, done)
            window_start, window_loss = time.perf_counter(), []
        # Checkpoints follow their own cadence, not the logging one.
        if checkpointing:
            _report_with_checkpoint(model, optimizer, cfg, rank, done, metrics)
        else:
            ray.train.report(metrics)


def _global_mean(loss: torch.Tensor, world: int) -> float:
    """The loss averaged over ranks: the global batch's loss, the same on every rank.

    One all-reduce a step; a NaN or inf on any rank makes the mean non-finite
    everywhere, so all ranks stop together under DDP.
    """
    if world == 1:
        return loss.item()
    import torch.distributed as dist

    total = loss.detach().float().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)  # gloo has no AVG
    return total.item() / world


def _report_with_checkpoint(model, optimizer, cfg: LoopConfig, rank, step, metrics) -> None:
    import ray.train

    state_dict = _full_state_dict(model, cfg.train.strategy)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            _unwrap(model).save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
            opt = optimizer.state_dict() if cfg.train.strategy != "fsdp" else None
            state = {"step": step, "optimizer": opt, "rng": torch.get_rng_state()}
            torch.save(state, Path(tmp) / STATE_FILE)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint)


def _maybe_inject_fault(step: int, fail_at: int, cfg: LoopConfig) -> None:
    """Crash once at ``LMOPS_FAULT_AT_STEP`` to exercise restart-from-checkpoint.

    A marker file in the run's storage makes the fault fire only on the first
    attempt; this is how the fault-tolerance test kills a worker for real.
    """
    if not fail_at or step + 1 != fail_at:
        return
    marker = Path(cfg.fault_marker)
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("fault injected\n")
    os._exit(1)
