"""Prefect flow: the standard evaluation (held-out perplexity, sample generations)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient
from prefect import flow, task
from prefect.artifacts import create_table_artifact
from pydantic import BaseModel

from lmops.config import RunConfig
from lmops.evaluation.suite import evaluate_model
from lmops.progress import reporter
from pipelines.train import TrainedModel


class EvalResult(BaseModel):
    metrics: dict[str, float]
    samples: list[dict]


@task(name="evaluate-model")
def evaluate_stage(config: RunConfig, trained: TrainedModel) -> EvalResult:
    meta = json.loads((Path(trained.token_dir) / "meta.json").read_text())
    val = np.memmap(Path(trained.token_dir) / "val.bin", dtype=meta["dtype"], mode="r")
    with reporter().task("evaluate: perplexity and samples"):
        rep = evaluate_model(Path(trained.model_dir), val, config.eval, config.model.seq_len)
    return EvalResult(metrics=rep.metrics, samples=rep.samples)


@task(name="log-evaluation", retries=3, retry_delay_seconds=2)
def log_evaluation(run_id: str, result: EvalResult) -> None:
    client = MlflowClient()
    for k, v in result.metrics.items():
        client.log_metric(run_id, k, v)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_table(
            {k: [s[k] for s in result.samples] for k in result.samples[0]}, "eval/samples.json"
        )
    create_table_artifact(
        key="eval-samples",
        table=result.samples,
        description="Greedy generations for the standard prompts",
    )


@flow(name="lmops-evaluate")
def evaluate_flow(config: RunConfig, trained: TrainedModel) -> EvalResult:
    """Evaluate the trained model and record the results in its MLflow run."""
    result = evaluate_stage(config, trained)
    log_evaluation(trained.run_id, result)
    return result
