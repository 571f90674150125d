"""Training speed through the platform (Ray Train, 1 worker) against a bare PyTorch loop.

Both sides train the same model (the ``small`` preset by default, random init from the
same seed) on the same token shards, with the same batch, sequence length, AdamW,
learning-rate schedule, gradient clipping and data order (``block_indices``), for the same
number of steps, on the same number of torch threads. So they do equal work, and their
loss curves must agree (that is checked, not assumed).

Speed is tokens per second over the steps after the first logging window, which leaves
out start-up (Ray, worker process, imports) on both sides: the platform's own
``train/tokens_per_s`` from its MLflow run, and the same window measured in the bare loop.
Each side runs ``--repeats`` times, the order swapped every round (Ray is shut down
before the bare loop runs, as for a user without Ray); the ratio is per round, and the
median is reported. Target (issue 8): platform / bare >= 0.95.

    .venv/bin/python benchmarks/train_throughput.py            # about 5 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def shards(folder: Path, vocab: int, n_tokens: int) -> Path:
    """Token shards of a Zipf-like stream: the loss falls, so curves can be compared."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_tokens), ("val", n_tokens // 10)):
        ids = np.minimum(rng.zipf(1.3, size=n), vocab - 1).astype("uint16")
        ids.tofile(folder / f"{name}.bin")
    (folder / "meta.json").write_text(json.dumps({"dtype": "uint16"}))
    return folder


def bare_loop(model_cfg, train_cfg, cfg_dir: Path, token_dir: Path) -> dict:
    """The loop a PyTorch user would write: no Ray, no MLflow, same maths."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from lmops.training.schedule import block_indices, lr_at

    torch.set_num_threads(train_cfg.threads_per_worker)
    torch.manual_seed(train_cfg.seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(cfg_dir))
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": train_cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=train_cfg.lr,
        betas=(0.9, 0.95),
    )
    data = np.memmap(token_dir / "train.bin", dtype="uint16", mode="r")
    seq, bs, total = model_cfg.seq_len, train_cfg.batch_size, train_cfg.max_steps
    losses, window = [], None
    model.train()
    for step in range(total):
        if step == train_cfg.log_every:
            window = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, train_cfg.lr, train_cfg.warmup_steps, total, 0.1)
        starts = block_indices(len(data), seq, step, bs, 0, 1, train_cfg.seed)
        x = torch.from_numpy(np.stack([data[s : s + seq].astype(np.int64) for s in starts]))
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    elapsed = time.perf_counter() - window
    tokens = (total - train_cfg.log_every) * seq * bs
    return {"tokens_per_s": tokens / elapsed, "losses": losses}


def platform(
    model_cfg, train_cfg, cfg_dir: Path, token_dir: Path, work: Path, extra: list[str] = ()
) -> dict:
    """``lmops.training.launch.train`` with an MLflow run, as the pipeline calls it.

    ``extra`` names more logged metrics to return, each over the same windows.
    """
    from mlflow import MlflowClient

    from lmops.training.launch import train

    uri = f"sqlite:///{work / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("bench") or client.get_experiment(
        client.create_experiment("bench")
    )
    run_id = client.create_run(exp.experiment_id).info.run_id
    name = f"bench-{run_id}"
    train(model_cfg, train_cfg, cfg_dir, token_dir, work / "ray", name, run_id, uri, work / name)
    speed = sorted(client.get_metric_history(run_id, "train/tokens_per_s"), key=lambda m: m.step)
    loss = sorted(client.get_metric_history(run_id, "train/loss"), key=lambda m: m.step)
    # Windows after the first (whose clock starts before the worker's first step).
    later = [m.value for m in speed[1:]]
    out = {"tokens_per_s": statistics.mean(later), "window_losses": [m.value for m in loss]}
    for key in extra:
        hist = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        out[key] = [m.value for m in hist[1:]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.pop("RAY_ADDRESS", None)

    import ray

    from lmops.config import ModelConfig, TrainConfig
    from lmops.config.presets import PRESETS
    from lmops.models.presets import build_hf_config

    work = Path(tempfile.mkdtemp(prefix="lmops-bench-train-"))
    model_cfg = ModelConfig(**{**PRESETS[args.preset], "preset": args.preset})
    vocab = 4096
    cfg_dir = work / "hf-config"
    build_hf_config(model_cfg, vocab, 0, 0, 1).save_pretrained(cfg_dir)
    token_dir = shards(work / "tokens", vocab, 2_000_000)
    train_cfg = TrainConfig(
        max_steps=args.steps,
        batch_size=args.batch,
        lr=2e-3,
        warmup_steps=5,
        log_every=args.log_every,
        checkpoint_every=args.steps,
        val_batches=1,
        threads_per_worker=args.threads,
        use_gpu="no",
        max_failures=0,
    )
    print(
        f"{args.preset}: batch {args.batch} x seq {model_cfg.seq_len}, {args.steps} steps, "
        f"{args.threads} torch threads, {args.repeats} rounds"
    )
    ratios, plat_s, bare_s = [], [], []
    for r in range(args.repeats):
        # Odd rounds run the platform first, so an order effect cancels in the median.
        if r % 2:
            plat = platform(model_cfg, train_cfg, cfg_dir, token_dir, work / f"round{r}")
            ray.shutdown()  # the bare loop runs as a user without Ray would: no Ray daemons
            bare = bare_loop(model_cfg, train_cfg, cfg_dir, token_dir)
        else:
            bare = bare_loop(model_cfg, train_cfg, cfg_dir, token_dir)
            plat = platform(model_cfg, train_cfg, cfg_dir, token_dir, work / f"round{r}")
            ray.shutdown()
        # Equal work: the platform's logged window means equal the bare loop's losses.
        k = args.log_every
        bare_windows = [statistics.mean(bare["losses"][i : i + k]) for i in range(0, args.steps, k)]
        np.testing.assert_allclose(plat["window_losses"], bare_windows, rtol=1e-3)
        ratios.append(plat["tokens_per_s"] / bare["tokens_per_s"])
        plat_s.append(plat["tokens_per_s"])
        bare_s.append(bare["tokens_per_s"])
        print(
            f"round {r + 1}: platform {plat['tokens_per_s']:.0f} tokens/s, bare "
            f"{bare['tokens_per_s']:.0f} tokens/s, ratio {ratios[-1]:.3f}; "
            f"loss curves agree (last window {bare_windows[-1]:.4f})"
        )
    print(
        f"median: platform {statistics.median(plat_s):.0f} tokens/s, bare "
        f"{statistics.median(bare_s):.0f} tokens/s, ratio {statistics.median(ratios):.3f} "
        "(target >= 0.95)"
    )


if __name__ == "__main__":
    main()
