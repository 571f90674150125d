"""Evaluation generation: batched vs one prompt at a time, as the suite runs it.

Both sides call ``lmops.evaluation.decoding.generate_batch`` on the same prompts with
greedy decoding and the same ``max_new_tokens``; only ``batch_size`` differs (the
suite's default 16 vs 1). Greedy outputs must be equal, so the speed-up costs nothing
in what is measured. Models are random-init ``debug`` and ``small`` presets with a BPE
trained on the bilingual sample corpus: timing needs the shapes, not trained weights
(a random model rarely emits end-of-text, so every prompt runs to the full length and
both sides do the same work; the new-token totals are printed to show it).

    .venv/bin/python benchmarks/eval_generation_batching.py              # 2-3 min on 2 cores
    .venv/bin/python benchmarks/eval_generation_batching.py --repeats 3 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from lmops.config import DecodingConfig, GenerationConfig, ModelConfig, TokenizerConfig
from lmops.config.presets import PRESETS
from lmops.corpus.sample import BILINGUAL
from lmops.evaluation.decoding import generate_batch
from lmops.models.presets import build_hf_config, build_model
from lmops.tokenizer import train_tokenizer

VOCAB = {"debug": 1024, "small": 4096}  # as in the tiny and cpu run configs


def _prompts(n: int) -> list[str]:
    """The suite's standard prompts, then openings of corpus documents (mixed lengths)."""
    prompts = list(GenerationConfig().prompts)
    for line in BILINGUAL.read_text("utf-8").splitlines():
        if len(prompts) >= n:
            break
        rec = json.loads(line)
        cut = 6 if rec["lang"] == "zh" else 24
        prompts.append(rec["text"][: cut + len(prompts) % 7])
    return prompts[:n]


def _timed(model, tok, prompts, batch_size, max_new_tokens):
    t = time.perf_counter()
    gens = generate_batch(
        model, tok, prompts, DecodingConfig(), batch_size=batch_size, max_new_tokens=max_new_tokens
    )
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, gens


def run(preset: str, n_prompts: int, max_new_tokens: int, repeats: int, device: str) -> dict:
    texts = [json.loads(x)["text"] for x in BILINGUAL.read_text("utf-8").splitlines()]
    tok = train_tokenizer(texts, TokenizerConfig(vocab_size=VOCAB[preset], min_frequency=1))
    torch.manual_seed(0)
    cfg = build_hf_config(
        ModelConfig(preset=preset, **PRESETS[preset]),
        len(tok),
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
    )
    model = build_model(cfg).to(device).eval()
    prompts = _prompts(n_prompts)
    _timed(model, tok, prompts[:2], 2, 4)  # warm-up: first-call allocations
    batched, single, equal = [], [], True
    for _ in range(repeats):
        tb, gb = _timed(model, tok, prompts, 16, max_new_tokens)
        ts, gs = _timed(model, tok, prompts, 1, max_new_tokens)
        batched.append(tb)
        single.append(ts)
        equal &= gb == gs
    return {
        "preset": preset,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "prompts": len(prompts),
        "new_tokens_batched": sum(g.new_tokens for g in gb),
        "new_tokens_single": sum(g.new_tokens for g in gs),
        "batched_s": statistics.median(batched),
        "single_s": statistics.median(single),
        "ratio": statistics.median(s / b for s, b in zip(single, batched, strict=True)),
        "equal": equal,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["debug", "small"])
    ap.add_argument("--prompts", nargs="+", type=int, default=[5, 32])
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    rows = [
        run(p, n, args.max_new_tokens, args.repeats, args.device)
        for p in args.presets
        for n in args.prompts
    ]
    print(
        f"\n=== greedy generation, batch 16 vs 1 prompt at a time "
        f"({args.max_new_tokens} new tokens, median of {args.repeats}, {args.device}, "
        f"{torch.get_num_threads()} threads) ==="
    )
    head = ["preset", "params", "prompts", "new tok", "batched s", "single s", "single/batched"]
    print(f"{head[0]:8}{head[1]:>8}{head[2]:>9}{head[3]:>9}{head[4]:>11}{head[5]:>10}{head[6]:>16}")
    for r in rows:
        print(
            f"{r['preset']:8}{r['params_m']:7.1f}M{r['prompts']:9d}{r['new_tokens_batched']:9d}"
            f"{r['batched_s']:11.2f}{r['single_s']:10.2f}{r['ratio']:15.2f}x"
        )
    for r in rows:
        same_work = r["new_tokens_batched"] == r["new_tokens_single"]
        print(
            f"{r['preset']}/{r['prompts']} prompts: outputs equal {r['equal']}, "
            f"same new tokens {same_work}"
        )
    if not all(r["equal"] for r in rows):
        raise SystemExit("batched greedy output differs from one-at-a-time output")


if __name__ == "__main__":
    main()
