"""Sample generations for the standard prompts under each decoding strategy.

Every strategy in ``eval.generation.strategies`` (greedy, beam, top-k, top-p,
temperature by default) continues every prompt through ``generate_batch``, so the
samples are batched and the sampled strategies repeat under their seeds. Greedy output
gives the length metrics (it is deterministic); distinct-2 per strategy is a
repetition signal: a model stuck in a loop repeats its bigrams and scores low.
"""

from __future__ import annotations

from lmops.errors import LmopsError
from lmops.evaluation.decoding import generate_batch
from lmops.evaluation.scorer import EvalData, Scorer, ScoreResult


def distinct_n(sequences: list[list[int]], n: int = 2) -> float:
    """Distinct n-grams / all n-grams, pooled over sequences; 0 when there are none."""
    grams = [tuple(s[i : i + n]) for s in sequences for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


class GenerationScorer(Scorer):
    """Completions of ``eval.generation.prompts`` under every configured strategy."""

    name = "generation"

    def __init__(self, cfg):
        self.cfg = cfg  # GenerationConfig

    @classmethod
    def from_config(cls, cfg) -> GenerationScorer:
        return cls(cfg.generation)

    def score(self, model, tokenizer, data: EvalData) -> ScoreResult:
        cfg = self.cfg
        if not cfg.strategies:
            raise LmopsError("eval.generation.strategies is empty; name at least one strategy")
        # Length metrics come from greedy (deterministic), else from the first strategy.
        lengths_from = "greedy" if "greedy" in cfg.strategies else next(iter(cfg.strategies))
        rows: list[dict] = []
        metrics: dict[str, float] = {}
        for strategy, decoding in cfg.strategies.items():
            gens = generate_batch(
                model,
                tokenizer,
                list(cfg.prompts),
                decoding,
                batch_size=cfg.batch_size,
                max_new_tokens=cfg.max_new_tokens,
            )
            rows += [
                {
                    "strategy": strategy,
                    "prompt": g.prompt,
                    "completion": g.completion,
                    "new_tokens": g.new_tokens,
                }
                for g in gens
            ]
            # Bigrams of the completions' text as the model's tokenizer splits it.
            tokens = tokenizer([g.completion for g in gens], add_special_tokens=False)["input_ids"]
            metrics[f"eval/distinct_2_{strategy}"] = distinct_n(tokens, 2)
            if strategy == lengths_from:
                new = [g.new_tokens for g in gens]
                metrics["eval/min_new_tokens"] = float(min(new))
                metrics["eval/mean_new_tokens"] = sum(new) / len(new)
        return ScoreResult(metrics, {"eval_samples": rows})
