"""The per-worker training loop that Ray Train's TorchTrainer runs on every rank.

The objective (``lmops.training.objectives``) decides what a batch is and which head
trains; the loop is the same for all of them. Rank 0 logs metrics to MLflow itself:
Ray Train V2 keeps no metrics without a checkpoint and its RunConfig takes no MLflow
callback. Checkpoints hold the model in Hugging Face format (safetensors; a LoRA
adapter for LoRA runs) plus the optimizer state, the step and rank 0's torch RNG
state, so a restarted worker group resumes where the last checkpoint left off. Under
FSDP each rank saves its own shard of the optimizer state with
``torch.distributed.checkpoint``. The learning rate, the data order and the MLM masks
are pure functions of the step, so they need no state of their own.
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
from lmops.training.schedule import lr_at, mask_key, row_indices

STATE_FILE = "trainer_state.pt"
SHARDED_DIR = "sharded"  # FSDP: torch.distributed.checkpoint files, one per rank


@dataclass(frozen=True)
class LoopConfig:
    """What crosses into every Ray Train worker: typed and frozen, not a dict."""

    train: TrainConfig
    seq_len: int
    hf_config_dir: str
    tokenizer_dir: str | None  # needed by mlm (mask token) and sft (padding); clm reads ids
    token_dir: str
    init_dir: str | None  # the parent model's weights (HF folder); None = from scratch
    mlflow_run_id: str | None
    mlflow_tracking_uri: str
    fault_marker: str
    nonfinite_marker: str


def _device() -> torch.device:
    import ray.train.torch

    return ray.train.torch.get_device()


def _unwrap(model):
    return getattr(model, "module", model)


def _full_state_dict(model, strategy: str):
    """The whole model's weights on rank 0 (a collective under FSDP: every rank calls it)."""
    if strategy != "fsdp":
        return _unwrap(model).state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=opts)


@torch.no_grad()
def _validate(model, objective, data, cfg: LoopConfig, device, amp) -> dict[str, float]:
    """Loss and the objective's own metrics on fixed validation rows (same masks each time)."""
    model.eval()
    bs, n = cfg.train.batch_size, objective.n_rows(data)
    losses, sums = [], {}
    for i in range(min(cfg.train.val_batches, max(1, n // bs))):
        rows = (np.arange(bs) + i * bs) % n
        batch = objective.batch(data, rows, mask_key(cfg.train.seed, -1 - i, 0), device)
        with amp:
            out = model(**batch)
        losses.append(out.loss.float().item())
        for k, (total, count) in objective.val_metrics(out.logits, batch).items():
            prev = sums.get(k, (0.0, 0.0))
            sums[k] = (prev[0] + total, prev[1] + count)
    model.train()
    metrics = {"val/loss": float(np.mean(losses))}
    return metrics | {k: total / max(count, 1) for k, (total, count) in sums.items()}


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


def _build_model(cfg: LoopConfig, objective, checkpoint_dir: Path | None):
    """From the checkpoint, the parent model or the config; LoRA adapters on the parent."""
    import transformers
    from transformers import AutoConfig

    from lmops.training import lora

    auto = getattr(transformers, objective.auto_class)
    if cfg.train.lora.r:
        base = auto.from_pretrained(cfg.init_dir)
        if checkpoint_dir is not None:
            return lora.resume(base, checkpoint_dir)
        return lora.wrap(base, cfg.train.lora, objective.model_kind)
    if checkpoint_dir is not None:
        return auto.from_pretrained(checkpoint_dir)
    if cfg.init_dir:
        return auto.from_pretrained(cfg.init_dir)
    return auto.from_config(AutoConfig.from_pretrained(cfg.hf_config_dir))


def _fully_shard(model, device, bf16: bool):
    """FSDP2: shard every transformer block, then the root (PyTorch's current FSDP).

    Written here rather than through ``prepare_model(parallel_strategy="fsdp")``: that
    wraps the older FSDP, which needs an accelerator, while ``fully_shard`` runs on CPU
    ranks too (so the tests exercise it) and pairs with distributed checkpoints. The
    blocks are the classes transformers lists in ``_no_split_modules``.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16
        else MixedPrecisionPolicy()
    )
    model.to(device)
    blocks = set(getattr(model, "_no_split_modules", None) or [])
    for module in model.modules():
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def _train(cfg: LoopConfig, ctx) -> None:
    import ray.train
    import ray.train.torch
    from transformers import AutoConfig, PreTrainedTokenizerFast

    from lmops.training.objectives import objective_class

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
    t = cfg.train
    tokenizer = (
        PreTrainedTokenizerFast.from_pretrained(cfg.tokenizer_dir) if cfg.tokenizer_dir else None
    )
    objective = objective_class(t.objective)(getattr(t, t.objective), tokenizer, cfg.seq_len)

    start_step, state = 0, {}
    checkpoint = ray.train.get_checkpoint()
    with checkpoint.as_directory() if checkpoint else contextlib.nullcontext() as d:
        ckpt = Path(d) if d else None
        model = _build_model(cfg, objective, ckpt)
        if ckpt is not None:
            state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=False)
            start_step = state["step"]
            if "rng" in state:  # dropout and any sampling continue where they stopped
                torch.set_rng_state(state["rng"])
        hf_config = AutoConfig.from_pretrained(cfg.hf_config_dir)
        per_token = flops_per_token(
            sum(p.numel() for p in model.parameters()),  # before FSDP shards them
            hf_config.num_hidden_layers,
            hf_config.hidden_size,
            cfg.seq_len,
        )
        fsdp = t.strategy == "fsdp" and world > 1
        if fsdp:
            model = _fully_shard(model, device, use_bf16)
        else:
            model = ray.train.torch.prepare_model(model)
        trainable = [p for p in model.parameters() if p.requires_grad]  # LoRA: adapters only
        optimizer = torch.optim.AdamW(
            [
                {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": t.weight_decay},
                {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
            ],
            lr=t.lr,
            betas=(0.9, 0.95),
            fused=device.type == "cuda",
        )
        if ckpt is not None and fsdp:
            _load_sharded_optimizer(model, optimizer, ckpt / SHARDED_DIR)
        elif state.get("optimizer") is not None:
            optimizer.load_state_dict(state["optimizer"])
    _record_nodes(cfg, rank, world)
    peak = peak_flops(
        t.peak_tflops, torch.cuda.get_device_name(device) if device.type == "cuda" else None
    )

    shards = Path(cfg.token_dir)
    train, val = objective.open(shards, "train"), objective.open(shards, "val")
    log = _mlflow_logger(cfg, rank)
    total, accum = t.max_steps, t.grad_accum_steps
    tokens_per_step = cfg.seq_len * t.batch_size * world * accum
    fail_at = int(os.environ.get("LMOPS_FAULT_AT_STEP", "0"))
    window_start, window_loss = time.perf_counter(), []

    model.train()
    for step in range(start_step, total):
        lr = lr_at(step, t.lr, t.warmup_steps, total, t.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # Gradient accumulation: micro-batch m of step s takes the rows a run without
        # accumulation would take at virtual step s * accum + m, so the data order and the
        # global batch do not depend on how the batch is split.
        total_loss = None
        for micro in range(accum):
            virtual = step * accum + micro
            rows = row_indices(objective.n_rows(train), virtual, t.batch_size, rank, world, t.seed)
            batch = objective.batch(train, rows, mask_key(t.seed, virtual, rank), device)
            last = micro == accum - 1
            # Gradients need reducing across ranks on the last micro-batch only.
            if fsdp:
                model.set_requires_gradient_sync(last)
                sync = contextlib.nullcontext()
            else:
                sync = contextlib.nullcontext() if last or world == 1 else model.no_sync()
            with sync:
                with amp:
                    loss = model(**batch).loss / accum
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
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, t.grad_clip)
        if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP
            grad_norm = grad_norm.full_tensor()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        window_loss.append(loss_value)
        _maybe_inject_fault(step, fail_at, cfg)

        done = step + 1
        logging = done % t.log_every == 0 or done == total
        checkpointing = done % t.checkpoint_every == 0 or done == total
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
                **_validate(model, objective, val, cfg, device, amp),
            }
            metrics["val/perplexity"] = float(np.exp(min(metrics["val/loss"], 50)))
            if peak:
                metrics["train/mfu"] = mfu(metrics["train/tokens_per_s"], per_token, peak, world)
            log({k: v for k, v in metrics.items() if "/" in k}, done)
            window_start, window_loss = time.perf_counter(), []
        # Checkpoints follow their own cadence, not the logging one.
        if checkpointing:
            _report_with_checkpoint(model, optimizer, cfg, rank, done, metrics, fsdp)
        else:
            ray.train.report(metrics)


def _record_nodes(cfg: LoopConfig, rank: int, world: int) -> None:
    """Tag the run with the Ray node id of every rank, in rank order (``lmops.ray_nodes``).

    Placement is worth recording: Ray Train numbers nodes by IP address, so two Ray nodes
    on one host share a node rank and would otherwise look like one.
    """
    import ray

    nodes = [ray.get_runtime_context().get_node_id()]
    if world > 1:
        import torch.distributed as dist

        gathered: list = [None] * world
        dist.all_gather_object(gathered, nodes[0])
        nodes = gathered
    if rank != 0 or not cfg.mlflow_run_id:
        return
    from mlflow import MlflowClient

    try:
        client = MlflowClient(tracking_uri=cfg.mlflow_tracking_uri)
        client.set_tag(cfg.mlflow_run_id, "lmops.ray_nodes", json.dumps(nodes))
    except Exception as e:  # placement is a record, not a reason to stop training
        print(f"lmops: worker placement not logged to MLflow: {e}", file=sys.stderr)


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


def _report_with_checkpoint(model, optimizer, cfg: LoopConfig, rank, step, metrics, fsdp):
    """Save and report a checkpoint; under FSDP every rank adds its optimizer shard."""
    import ray.train

    state_dict = _full_state_dict(model, "fsdp" if fsdp else "ddp")
    with tempfile.TemporaryDirectory() as tmp:
        if fsdp:
            import torch.distributed.checkpoint as dcp
            from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

            osd = get_optimizer_state_dict(model, optimizer)
            dcp.save({"optimizer": osd}, checkpoint_id=str(Path(tmp) / SHARDED_DIR))
        if rank == 0:
            _unwrap(model).save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
            opt = None if fsdp else optimizer.state_dict()
            state = {"step": step, "optimizer": opt, "rng": torch.get_rng_state()}
            torch.save(state, Path(tmp) / STATE_FILE)
        # Ray Train V2 copies every rank's files into the same checkpoint folder.
        checkpoint = ray.train.Checkpoint.from_directory(tmp) if rank == 0 or fsdp else None
        ray.train.report(metrics, checkpoint=checkpoint)


def _load_sharded_optimizer(model, optimizer, folder: Path) -> None:
    """Each rank reads its own shard of the optimizer state (FSDP)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_optimizer_state_dict,
        set_optimizer_state_dict,
    )

    osd = get_optimizer_state_dict(model, optimizer)
    loaded = {"optimizer": osd}
    dcp.load(loaded, checkpoint_id=str(folder))
    set_optimizer_state_dict(model, optimizer, loaded["optimizer"])


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
