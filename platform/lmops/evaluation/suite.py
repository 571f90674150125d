"""Run the standard evaluation suite on a saved Hugging Face model folder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmops.config import EvalConfig
from lmops.evaluation.generation import generate_samples
from lmops.evaluation.perplexity import strided_perplexity


@dataclass
class EvalReport:
    metrics: dict[str, float]
    samples: list[dict] = field(default_factory=list)


def evaluate_model(model_dir: Path, val_tokens: np.ndarray, cfg: EvalConfig, seq_len: int):
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    tok = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    ppl = strided_perplexity(
        model, val_tokens[: cfg.max_eval_tokens], seq_len, min(cfg.stride, seq_len)
    )
    samples = generate_samples(model, tok, cfg.prompts, cfg.max_new_tokens)
    new_tokens = [s["new_tokens"] for s in samples]
    metrics = {
        "eval/perplexity": ppl["perplexity"],
        "eval/nll": ppl["nll"],
        "eval/tokens_scored": float(ppl["tokens"]),
        "eval/min_new_tokens": float(min(new_tokens) if new_tokens else 0),
        "eval/mean_new_tokens": float(np.mean(new_tokens) if new_tokens else 0),
        "eval/parameters": float(sum(p.numel() for p in model.parameters())),
        "eval/seconds": time.perf_counter() - t0,
    }
    return EvalReport(metrics, samples)
