"""Training throughput and MFU on one GPU: ``gpt2-124m`` in bf16 through the platform.

The platform's own path (``lmops.training.launch.train``: Ray Train, one GPU worker,
bf16 autocast, fused AdamW) trains the preset on synthetic token shards, and the
figures are the ones it logs to MLflow: ``train/tokens_per_s`` and ``train/mfu``
(PaLM FLOPs per token over the device's dense bf16 peak; 989 TFLOP/s on an H200).
Windows after the first are reported, leaving out start-up and compilation of kernels.
Target (issue 8): MFU >= 40% (llm.c reaches about 40% on an H100).

    python benchmarks/gpu_train.py                          # on a GPU machine
    python benchmarks/gpu_train.py --preset debug --cpu     # a CPU smoke run of the script
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from train_throughput import platform, shards


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="gpt2-124m")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=16, help="Sequences per step.")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--vocab", type=int, default=50304, help="GPT-2's, padded to 64.")
    ap.add_argument("--cpu", action="store_true", help="Run on CPU (a smoke test of the script).")
    ap.add_argument("--out", type=Path, help="Write the figures here as JSON.")
    args = ap.parse_args()
    os.environ.pop("RAY_ADDRESS", None)

    import torch

    from lmops.config import ModelConfig, TrainConfig
    from lmops.config.presets import PRESETS
    from lmops.models.presets import build_hf_config

    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA device is visible; pass --cpu for a smoke run")
    work = Path(tempfile.mkdtemp(prefix="lmops-bench-gpu-"))
    model_cfg = ModelConfig(**{**PRESETS[args.preset], "preset": args.preset})
    cfg_dir = work / "hf-config"
    build_hf_config(model_cfg, args.vocab, 0, 0, 1).save_pretrained(cfg_dir)
    n_tokens = model_cfg.seq_len * args.batch * (args.steps + 2)
    token_dir = shards(work / "tokens", args.vocab, n_tokens)
    train_cfg = TrainConfig(
        max_steps=args.steps,
        batch_size=args.batch,
        lr=6e-4,
        warmup_steps=10,
        log_every=args.log_every,
        checkpoint_every=args.steps,
        val_batches=1,
        use_gpu="no" if args.cpu else "yes",
        peak_tflops=1.0 if args.cpu else 0,  # a nominal CPU peak, so the MFU code path runs
        max_failures=0,
        system_metrics=False,
    )
    device = "cpu" if args.cpu else torch.cuda.get_device_name(0)
    print(f"{args.preset} on {device}: batch {args.batch} x seq {model_cfg.seq_len}, "
          f"{args.steps} steps")  # fmt: skip
    got = platform(model_cfg, train_cfg, cfg_dir, token_dir, work / "run", extra=["train/mfu"])
    result = {
        "preset": args.preset,
        "device": device,
        "tokens_per_s": got["tokens_per_s"],
        "mfu": statistics.mean(got["train/mfu"]),
        "bf16": not args.cpu and torch.cuda.is_bf16_supported(),
        "window_losses": got["window_losses"],
    }
    print(
        f"tokens/s {result['tokens_per_s']:,.0f}; MFU {result['mfu']:.1%} "
        f"(target >= 40% on an H200); loss {result['window_losses'][0]:.3f} -> "
        f"{result['window_losses'][-1]:.3f}"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
