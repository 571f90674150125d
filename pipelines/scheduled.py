"""Deployable entry points: flows whose parameters are plain names, for schedules.

Deployments (``prefect.yaml``) pass a config name, overrides and sources; these
flows resolve them and call the same flows ``lmops run`` and ``lmops ingest`` use.

    lmops schedule          # registers prefect.yaml's deployments on the Prefect server
"""

from __future__ import annotations

from prefect import flow

from lmops.home import prepare_environment
from pipelines.notify import notify_failure
from pipelines.run_config import load_run_config


@flow(name="lmops-nightly-ingest", on_failure=[notify_failure], on_crashed=[notify_failure])
def scheduled_ingest(
    config_name: str = "cpu", sources: list[str] | None = None, overrides: list[str] | None = None
) -> str:
    """Ingest and validate the sources; returns the dataset version id (cached if unchanged)."""
    prepare_environment()
    from pipelines.ingest import ingest_flow

    return ingest_flow(load_run_config(config_name, overrides or []), sources or None).version_id


@flow(name="lmops-weekly-train", on_failure=[notify_failure], on_crashed=[notify_failure])
def scheduled_train(
    config_name: str = "cpu", sources: list[str] | None = None, overrides: list[str] | None = None
) -> dict:
    """Ingest → train → evaluate → promote to @staging; fails when the gate refuses."""
    prepare_environment()
    from pipelines.end_to_end import pipeline_flow

    r = pipeline_flow(load_run_config(config_name, overrides or []), sources or None)
    pr = r.promotion
    if not pr.promoted:
        # A refused candidate fails the scheduled run, so the failure hook notifies.
        from model_registry.promotion import GateRefused

        failed = [x for x in pr.reasons if x.startswith("FAIL")]
        raise GateRefused(
            f"the @{pr.alias} gate refused {pr.model_name} v{pr.version}: " + "; ".join(failed)
        )
    return {
        "dataset": r.dataset.version_id,
        "model": r.promotion.model_name,
        "version": r.promotion.version,
        "promoted": r.promotion.promoted,
        "cached": r.cached,
    }
