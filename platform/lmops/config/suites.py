"""Named evaluation suites: lists of scorer names (``lmops.evaluation.scorer.SCORERS``).

They live with the settings because a run config's default ``eval.scorers`` is one of
them (``standard``, or ``mlm`` for the MLM objective).
"""

from __future__ import annotations

# Named suites for `lmops evaluate --suite NAME`; a run config lists its own in eval.scorers.
SUITES: dict[str, list[str]] = {
    "standard": [
        "perplexity",
        "generation",
        "prompt_tasks",
        "redteam",
        "pii_leak",
        "memorisation",
        "bias",
    ],
    "quality": ["perplexity", "generation", "prompt_tasks"],
    "safety": ["redteam", "pii_leak", "memorisation", "bias"],
    "mlm": ["masked_accuracy", "bias"],
}
