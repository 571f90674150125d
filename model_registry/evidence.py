"""Evaluation evidence as version tags: ``eval.*``, ``safety.*`` and ``bias.*``.

These tags are the copy of the evidence people read in the MLflow UI. Anyone with
EDIT on the model can change a tag, so nothing decides on them: the gate reads the
evidence from the version's signed statement (:mod:`model_registry.signed_evidence`)
and refuses a version whose tags differ from it.
"""

from __future__ import annotations

from model_registry import tags as T


def evidence_tags(metrics: dict[str, float]) -> dict[str, str]:
    """``eval/perplexity`` → ``eval.perplexity``; other families are not evidence."""
    out = {}
    for key, value in metrics.items():
        family, _, rest = key.partition("/")
        if family in T.EVIDENCE_FAMILIES and rest:
            out[f"{family}.{rest}"] = f"{float(value):.6g}"
    return out
