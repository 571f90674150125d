"""2-worker DDP against 1 worker through the platform, on the same cores and global batch.

Both sides run ``lmops.training.launch.train`` (Ray Train) on the same model, token
shards, steps and global batch: 1 worker with ``--batch`` sequences on all the machine's
torch threads, against 2 DDP workers (gloo on CPU) with half the batch and half the
threads each. So they do equal work on equal cores, and their loss curves must agree
(checked, rtol 1e-3). The ratio of tokens/s (2 workers over 1) is DDP's efficiency at
equal cores: what the gradient all-reduce and the second process cost. Rounds alternate
the order; the median ratio is reported.

    .venv/bin/python benchmarks/train_scaling.py            # about 6 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
from train_throughput import platform, shards


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16, help="Global batch (sequences per step).")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ.pop("RAY_ADDRESS", None)

    import ray

    from lmops.config import ModelConfig, TrainConfig
    from lmops.config.presets import PRESETS
    from lmops.models.presets import build_hf_config

    cores = os.cpu_count() or 2
    work = Path(tempfile.mkdtemp(prefix="lmops-bench-scaling-"))
    model_cfg = ModelConfig(**{**PRESETS[args.preset], "preset": args.preset})
    vocab = 4096
    cfg_dir = work / "hf-config"
    build_hf_config(model_cfg, vocab, 0, 0, 1).save_pretrained(cfg_dir)
    token_dir = shards(work / "tokens", vocab, 2_000_000)

    def cfg(workers: int) -> TrainConfig:
        return TrainConfig(
            num_workers=workers,
            max_steps=args.steps,
            batch_size=args.batch // workers,
            lr=2e-3,
            warmup_steps=5,
            log_every=args.log_every,
            checkpoint_every=args.steps,
            val_batches=1,
            threads_per_worker=max(1, cores // workers),
            use_gpu="no",
            max_failures=0,
            system_metrics=False,
        )

    print(
        f"{args.preset}: global batch {args.batch} x seq {model_cfg.seq_len}, {args.steps} "
        f"steps, {cores} cores: 1 worker x {cores} threads vs 2 workers x {cores // 2}"
    )
    ratios, one_s, two_s = [], [], []
    for r in range(args.repeats):
        runs = {}
        for workers in (1, 2) if r % 2 == 0 else (2, 1):
            runs[workers] = platform(
                model_cfg, cfg(workers), cfg_dir, token_dir, work / f"r{r}w{workers}"
            )
            ray.shutdown()  # a fresh local Ray each time, as a new `lmops train` would get
        np.testing.assert_allclose(runs[2]["window_losses"], runs[1]["window_losses"], rtol=1e-3)
        one_s.append(runs[1]["tokens_per_s"])
        two_s.append(runs[2]["tokens_per_s"])
        ratios.append(two_s[-1] / one_s[-1])
        print(
            f"round {r + 1}: 1 worker {one_s[-1]:.0f} tokens/s, 2 workers {two_s[-1]:.0f} "
            f"tokens/s, ratio {ratios[-1]:.3f}; loss curves agree"
        )
    print(
        f"median: 1 worker {statistics.median(one_s):.0f} tokens/s, 2 DDP workers "
        f"{statistics.median(two_s):.0f} tokens/s, efficiency at equal cores "
        f"{statistics.median(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
