"""Run the evaluation suite: the scorers named in ``eval.scorers``, on one model and set.

Every scorer is built and its needs are checked before the first forward pass, so
a suite that cannot run (an MLM scorer on a causal model, a probe without
training documents) fails at once with the scorer's reason. A named suite
(``lmops evaluate --suite standard``) runs with ``strict=False``: scorers that do not
apply (generation on an MLM) are skipped and the report says why, while the run
config's own ``eval.scorers`` list must fit the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lmops.config import EvalConfig
from lmops.errors import LmopsError
from lmops.evaluation.scorer import EvalData, Scorer, ScoreResult, scorer_class


@dataclass
class SuiteReport:
    """Merged metrics and tables of every scorer, with what ran and how long it took."""

    metrics: dict[str, float]
    tables: dict[str, list[dict]]
    eval_set_id: str
    scorers: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def build_scorers(
    names: list[str], cfg: EvalConfig, kind: str, data: EvalData, strict: bool = True
) -> tuple[list[Scorer], dict[str, str]]:
    """Instantiate and check scorers; returns (runnable, skipped name -> reason)."""
    if not names:
        raise LmopsError("the evaluation suite is empty; list scorers in eval.scorers")
    runnable, skipped = [], {}
    for name in names:
        scorer = scorer_class(name).from_config(cfg)
        why = scorer.check(kind, data)
        if why is None:
            runnable.append(scorer)
        elif strict:
            raise LmopsError(why)
        else:
            skipped[name] = why
    return runnable, skipped


def run_suite(
    model, tokenizer, kind: str, data: EvalData, cfg: EvalConfig, strict: bool = True
) -> SuiteReport:
    """Score ``model`` with every scorer in ``cfg.scorers`` on ``data``."""
    scorers, skipped = build_scorers(list(cfg.scorers), cfg, kind, data, strict)
    merged = ScoreResult()
    seconds: dict[str, float] = {}
    total = time.perf_counter()
    for scorer in scorers:
        t0 = time.perf_counter()
        merged.merge(scorer.score(model, tokenizer, data))
        seconds[scorer.name] = round(time.perf_counter() - t0, 3)
    merged.metrics["suite/seconds"] = time.perf_counter() - total
    merged.metrics["eval/parameters"] = float(sum(p.numel() for p in model.parameters()))
    return SuiteReport(
        metrics=merged.metrics,
        tables=merged.tables,
        eval_set_id=data.eval_set_id,
        scorers=[s.name for s in scorers],
        skipped=skipped,
        seconds=seconds,
    )
