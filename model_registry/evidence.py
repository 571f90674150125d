"""Evaluation evidence on a model version: tags, a digest over them, and a check.

The suite's metrics become version tags ``eval.*``, ``safety.*`` and ``bias.*``; the
tag ``lmops.evidence_digest`` hashes all of them together with the evaluation set.
Anyone can edit a tag in the MLflow UI, so a gate reads the evidence back with
:func:`read_evidence`, which refuses evidence whose digest no longer matches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from lmops.errors import LmopsError
from model_registry import tags as T


def evidence_tags(metrics: dict[str, float]) -> dict[str, str]:
    """``eval/perplexity`` → ``eval.perplexity``; other families are not evidence."""
    out = {}
    for key, value in metrics.items():
        family, _, rest = key.partition("/")
        if family in T.EVIDENCE_FAMILIES and rest:
            out[f"{family}.{rest}"] = f"{float(value):.6g}"
    return out


def evidence_digest(tags: dict[str, str], eval_set: str) -> str:
    """sha256 over the sorted evidence tags and the evaluation set id."""
    items = {k: v for k, v in tags.items() if k.split(".", 1)[0] in T.EVIDENCE_FAMILIES}
    blob = json.dumps({"eval_set": eval_set, "evidence": items}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def evidence_for_version(metrics: dict[str, float], eval_set: str) -> dict[str, str]:
    """The evidence tags plus the eval set and digest, ready to set on a version."""
    tags = evidence_tags(metrics)
    return {**tags, T.EVAL_SET: eval_set, T.EVIDENCE_DIGEST: evidence_digest(tags, eval_set)}


@dataclass(frozen=True)
class Evidence:
    """Evidence read back from a version: metrics in ``family/name`` form."""

    metrics: dict[str, float]
    eval_set: str
    digest: str


def read_evidence(version_tags: dict[str, str], label: str) -> Evidence:
    """Parse and verify a version's evidence; a missing or edited one is an error."""
    digest = version_tags.get(T.EVIDENCE_DIGEST)
    eval_set = version_tags.get(T.EVAL_SET, "")
    ev = {k: v for k, v in version_tags.items() if k.split(".", 1)[0] in T.EVIDENCE_FAMILIES}
    if not digest or not ev:
        raise LmopsError(
            f"{label} has no evaluation evidence; run `lmops evaluate` on it with --attach"
        )
    if evidence_digest(ev, eval_set) != digest:
        raise LmopsError(
            f"{label}: evidence tags do not match {T.EVIDENCE_DIGEST} (edited by hand?); "
            "re-evaluate the version with `lmops evaluate ... --attach`"
        )
    metrics = {}
    for k, v in ev.items():
        family, _, rest = k.partition(".")
        metrics[f"{family}/{rest}"] = float(v)
    return Evidence(metrics, eval_set, digest)
