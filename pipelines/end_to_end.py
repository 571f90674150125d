"""Prefect flows: raw corpus → validated dataset (``pipeline_flow``), then dataset →
tokenizer → Ray-trained LM → evaluation → MLflow registry → gate → ``@staging``
(``model_flow``). They only wire stages together.

    lmops run --config tiny                    # both
    lmops train --config tiny --dataset latest # the second, on a published dataset
"""

from __future__ import annotations

import time

from mlflow import MlflowClient
from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from lmops.config import RunConfig
from lmops.home import home
from lmops.tracking import configure_mlflow
from model_registry import tags as T
from model_registry.promotion import promote
from model_registry.version_eval import rescorer
from pipelines.cache import cached_version, train_cache_key
from pipelines.evaluate import EvalResult, evaluate_flow
from pipelines.ingest import DatasetVersion, ingest_flow
from pipelines.notify import notify_failure
from pipelines.promote import Promotion, promote_flow
from pipelines.train import TrainedModel, mark_failed, train_flow


class PipelineResult(BaseModel):
    config: str
    dataset: DatasetVersion
    trained: TrainedModel | None  # None on a training cache hit
    evaluation: EvalResult | None
    promotion: Promotion
    cached: bool = False
    stage_seconds: dict[str, float]
    tracking_uri: str
    experiment: str


@flow(name="lmops-pipeline", on_failure=[notify_failure], on_crashed=[notify_failure])
def pipeline_flow(config: RunConfig, sources: list[str] | None = None) -> PipelineResult:
    """Ingest, then build a model from the new dataset version (``model_flow``)."""
    configure_mlflow(home(), config.registry.experiment)
    t0 = time.perf_counter()
    ds = ingest_flow(config, sources)
    return model_flow(config, ds, {"ingest + validate": round(time.perf_counter() - t0, 2)})


@flow(name="lmops-model", on_failure=[notify_failure], on_crashed=[notify_failure])
def model_flow(
    config: RunConfig,
    ds: DatasetVersion,
    times: dict[str, float] | None = None,
    resume_run: str | None = None,
) -> PipelineResult:
    """Dataset version → tokenizer → Ray-trained LM → evaluation → registry → gate.

    ``lmops run`` reaches it through ``pipeline_flow``; ``lmops train`` calls it on a
    published dataset version, or resumes the stopped training run ``resume_run``.
    """
    configure_mlflow(home(), config.registry.experiment)
    times = dict(times or {})

    def timed(stage, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        times[stage] = round(time.perf_counter() - t0, 2)
        return out

    key = train_cache_key(config, ds.version_id)
    # A parent alias may have moved since an earlier run, so a run from a parent
    # always trains: its inputs are not all in the cache key.
    fresh = resume_run or config.train.init_from
    hit = None if fresh else cached_version(config.registry.model_name, key)
    if hit is not None:
        return _cache_hit(config, ds, hit, times)
    trained = timed("tokenize + train", train_flow, config, ds, resume_run)
    try:
        ev = timed("evaluate", evaluate_flow, config, ds, trained)
    except BaseException as e:  # registration ends the run FINISHED; this path never gets there
        mark_failed(trained.run_id, interrupted=isinstance(e, KeyboardInterrupt))
        raise
    promo = timed("register + gate", promote_flow, config, ds, trained, ev, key)
    create_markdown_artifact(
        key="pipeline-summary",
        markdown="# lmops pipeline\n\n| stage | seconds |\n|---|---|\n"
        + "\n".join(f"| {k} | {v} |" for k, v in times.items())
        + f"\n\nModel `{promo.model_name}` v{promo.version}: "
        + ("promoted to" if promo.promoted else "NOT promoted to")
        + f" @{promo.alias}\n",
    )
    return _result(config, ds, promo, times, trained, ev)


def _result(
    config: RunConfig,
    ds: DatasetVersion,
    promo: Promotion,
    times: dict,
    trained: TrainedModel | None = None,
    ev: EvalResult | None = None,
) -> PipelineResult:
    return PipelineResult(
        config=config.name,
        dataset=ds,
        trained=trained,
        evaluation=ev,
        promotion=promo,
        cached=trained is None,
        stage_seconds=times,
        tracking_uri=home().tracking_uri,
        experiment=config.registry.experiment,
    )


def _cache_hit(config: RunConfig, ds: DatasetVersion, mv, times: dict) -> PipelineResult:
    """Nothing changed since version ``mv``: report it instead of training again.

    A version that was registered but never gated (a run that crashed in between)
    is gated now, so a cache hit never skips the gate.
    """
    alias = "staging"
    gated = T.gate(alias) in mv.tags
    if not gated:
        promote(mv.name, str(mv.version), alias, rescore=rescorer(config, ds.path))
        mv = MlflowClient().get_model_version(mv.name, str(mv.version))
    promoted = mv.tags.get(T.gate(alias)) == "passed"
    create_markdown_artifact(
        key="pipeline-summary",
        markdown=(
            f"# lmops pipeline: cache hit\n\nDataset `{ds.version_id}`, config digest "
            f"`{config.digest()}` and code commit are unchanged since "
            f"`{mv.name}` v{mv.version} (run `{mv.run_id}`).\n\n"
            "**Ingest and training were skipped.**\n"
        ),
    )
    promo = Promotion(
        model_name=mv.name,
        version=str(mv.version),
        model_uri=f"models:/{mv.name}/{mv.version}",
        alias=alias,
        promoted=promoted,
        reasons=[f"cache hit: v{mv.version} already built from these inputs"]
        + ([] if gated else ["it had never been gated: gated now"])
        + mv.tags.get(T.gate_reasons(alias), "").splitlines(),
    )
    return _result(config, ds, promo, times)
