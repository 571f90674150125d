"""Promotion: the one place that moves aliases, and only on a passed gate decision.

Every attempt, passed or not, is written to the version as an audit tag, so the
MLflow UI shows who or what moved a model, when, and on which evidence.
"""

from __future__ import annotations

import getpass
import json
import time

from mlflow import MlflowClient

from model_registry.gates import Decision


def record_and_promote(
    name: str, version: str, alias: str, decision: Decision, actor: str | None = None
) -> bool:
    """Set ``alias`` to ``version`` if the decision passed; always record the attempt."""
    client = MlflowClient()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    actor = actor or f"lmops-pipeline ({getpass.getuser()})"
    previous = None
    try:
        previous = str(client.get_model_version_by_alias(name, alias).version)
    except Exception:  # no holder yet
        previous = None
    event = {
        "time": now,
        "alias": alias,
        "actor": actor,
        "passed": decision.passed,
        "reasons": decision.reasons,
        "previous": previous,
    }
    client.set_model_version_tag(
        name, version, f"lmops.gate.{alias}", "passed" if decision.passed else "rejected"
    )
    client.set_model_version_tag(
        name, version, f"lmops.gate.{alias}.reasons", "\n".join(decision.reasons)
    )
    client.set_model_version_tag(name, version, f"lmops.audit.{now}", json.dumps(event))
    if decision.passed:
        client.set_registered_model_alias(name, alias, version)
    return decision.passed
