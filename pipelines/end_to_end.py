"""Prefect flow: raw corpus → validated dataset → tokenizer → Ray-trained LM →
evaluation → MLflow registry → gate → ``@staging``. It only wires stages together.

    lmops run --config tiny
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from lmops.config import RunConfig
from lmops.home import home
from lmops.tracking import configure_mlflow
from pipelines.evaluate import EvalResult, evaluate_flow
from pipelines.ingest import DatasetVersion, ingest_flow
from pipelines.promote import Promotion, promote_flow
from pipelines.train import TrainedModel, train_flow


class PipelineResult(BaseModel):
    config: str
    dataset: DatasetVersion
    trained: TrainedModel
    evaluation: EvalResult
    promotion: Promotion
    stage_seconds: dict[str, float]
    tracking_uri: str
    experiment: str


@flow(name="lmops-pipeline")
def pipeline_flow(config: RunConfig, sources: list[str] | None = None) -> PipelineResult:
    """Run every stage in order; each stage is a subflow with its own Prefect run."""
    configure_mlflow(home(), config.registry.experiment)
    times: dict[str, float] = {}

    def timed(stage, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        times[stage] = round(time.perf_counter() - t0, 2)
        return out

    ds = timed("ingest + validate", ingest_flow, config, sources)
    trained = timed("tokenize + train", train_flow, config, ds)
    ev = timed("evaluate", evaluate_flow, config, trained)
    promo = timed("register + gate", promote_flow, config, ds, trained, ev)
    create_markdown_artifact(
        key="pipeline-summary",
        markdown="# lmops pipeline\n\n| stage | seconds |\n|---|---|\n"
        + "\n".join(f"| {k} | {v} |" for k, v in times.items())
        + f"\n\nModel `{promo.model_name}` v{promo.version}: "
        + ("promoted to" if promo.promoted else "NOT promoted to")
        + f" @{promo.alias}\n",
    )
    return PipelineResult(
        config=config.name,
        dataset=ds,
        trained=trained,
        evaluation=ev,
        promotion=promo,
        stage_seconds=times,
        tracking_uri=home().tracking_uri,
        experiment=config.registry.experiment,
    )
