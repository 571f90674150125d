"""Wall time of the standard evaluation suite, per scorer, on the `debug` and `small` presets.

    .venv/bin/python benchmarks/eval_suite_time.py [--repeats 3]

Each preset is scored with the eval settings of the run config that trains it
(`tiny` for debug, `cpu` for small) on a real evaluation set: the shipped bilingual
corpus ingested into a temporary LMOPS_HOME. Models are freshly initialised, not
trained: an untrained model never stops early at end-of-text, so every generation
runs to its full length and these times are an upper bound for the generating
scorers. Prints the median over repeats of each scorer and of the whole suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {"debug": "tiny", "small": "cpu"}


def _eval_set(home: Path):
    from lmops.config import RunConfig
    from lmops.data.ingest import ingest
    from lmops.evaluation.eval_data import load_eval_data
    from pipelines.run_config import load_run_config

    cfg: RunConfig = load_run_config("tiny")
    src = REPO / "platform" / "lmops" / "corpus" / "bilingual.jsonl"
    rep = ingest([str(src)], cfg.data, home / "datasets")
    data = load_eval_data(rep.path, 0.2, 400, 64)
    return data, [d.text for d in data.train_sample]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lmops-bench-eval-"))
    os.environ["LMOPS_HOME"] = str(home)
    from lmops.home import prepare_environment

    prepare_environment()
    import mlflow
    import torch

    from lmops.config import TokenizerConfig
    from lmops.evaluation.suite import run_suite
    from lmops.models.presets import build_hf_config, build_model
    from lmops.tokenizer import train_tokenizer
    from pipelines.run_config import load_run_config

    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    data, texts = _eval_set(home)
    print(
        f"eval set {data.eval_set_id}: {len(data.held_out)} held-out docs, torch threads "
        f"{torch.get_num_threads()}"
    )
    for preset, config_name in CONFIGS.items():
        cfg = load_run_config(config_name)
        tok = train_tokenizer(texts, TokenizerConfig(vocab_size=cfg.tokenizer.vocab_size))
        model_cfg = cfg.model.model_copy(update={"preset": preset})
        hf = build_hf_config(
            model_cfg, len(tok), tok.eos_token_id, tok.eos_token_id, tok.pad_token_id
        )
        torch.manual_seed(0)
        model = build_model(hf).eval()
        runs = []
        for _ in range(args.repeats):
            rep = run_suite(model, tok, "causal", data, cfg.eval)
            runs.append({**rep.seconds, "suite": rep.metrics["suite/seconds"]})
        params = sum(p.numel() for p in model.parameters())
        print(
            f"\n{preset} ({params / 1e6:.2f}M params, eval settings of `{config_name}`), "
            f"median of {args.repeats}:"
        )
        for name in runs[0]:
            print(f"  {name:<14} {statistics.median(r[name] for r in runs):7.2f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
