"""Prefect flow: register the model with lineage and evidence, gate it, promote to @staging."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from lmops.config import RunConfig
from lmops.progress import reporter
from model_registry import tags as T
from model_registry.evaluations import eval_dataset
from model_registry.evidence import evidence_for_version, read_evidence
from model_registry.gates import Evidence, decide, load_policy
from model_registry.model_card import card_for_run
from model_registry.promote import record_and_promote
from model_registry.register import code_commit, log_and_register
from pipelines.evaluate import EvalResult
from pipelines.ingest import DatasetVersion
from pipelines.retry import transient_io_only
from pipelines.train import TrainedModel


class Promotion(BaseModel):
    model_name: str
    version: str
    model_uri: str
    alias: str
    promoted: bool
    reasons: list[str]


@task(name="register-model", retries=2, retry_delay_seconds=3, retry_condition_fn=transient_io_only)
def register_stage(
    config: RunConfig,
    ds: DatasetVersion,
    trained: TrainedModel,
    ev: EvalResult,
    cache_key: str = "",
) -> tuple[str, str]:
    """Log the model, attach the suite's metrics to it, register it with its evidence."""
    lineage = {
        T.DATASET_VERSION: ds.version_id,
        T.MLFLOW_RUN: trained.run_id,
        T.CODE_COMMIT: code_commit(),
        T.CONFIG: config.name,
        T.CONFIG_DIGEST: config.digest(),
        T.TOKENIZER: trained.tokenizer_id,
        T.MODEL_KIND: ev.kind,
    }
    card = card_for_run(config, ds, ev, lineage)
    tags = {**lineage, **evidence_for_version(ev.metrics, ev.eval_set_id)}
    if ev.comparison is not None:
        inc = ev.comparison["incumbent"]
        tags[T.COMPARED_WITH] = f"v{inc['version']} (@{inc['alias']}) on {ev.eval_set_id}"
    if cache_key:
        tags[T.TRAIN_CACHE_KEY] = cache_key
    dataset = eval_dataset(ev.eval_set_id, ds.path)

    def attach_metrics(model_id: str) -> None:
        # Linked to the LoggedModel and the eval set, so MLflow can rank models on them.
        mlflow.log_metrics(ev.metrics, model_id=model_id, dataset=dataset)

    with (
        reporter().task("register: logging model to MLflow"),
        mlflow.start_run(run_id=trained.run_id),
    ):
        mlflow.log_text(card.display, "model_card.md")
        uri, version, _ = log_and_register(
            trained.model_dir,
            config.registry.model_name,
            tags,
            card.hf,
            before_register=attach_metrics,
        )
    # Rendered again now that the version number exists, for "how to load".
    description = card_for_run(config, ds, ev, lineage, version=version).description
    MlflowClient().update_model_version(
        config.registry.model_name, version, description=description
    )
    return uri, version


@task(
    name="gate-and-promote", retries=2, retry_delay_seconds=3, retry_condition_fn=transient_io_only
)
def gate_stage(
    config: RunConfig, version: str, uri: str, trained: TrainedModel, ev: EvalResult
) -> Promotion:
    """Read the evidence back from the registry (digest checked) and decide."""
    name = config.registry.model_name
    policy = load_policy(config.registry.policy)
    alias = policy.get("alias", "staging")
    mv = MlflowClient().get_model_version(name, version)
    stored = read_evidence(dict(mv.tags), f"{name} v{version}")
    cmp = ev.comparison
    evidence = Evidence(
        metrics=stored.metrics,
        vocab_size=trained.vocab_size,
        eval_set=stored.eval_set,
        baseline_metrics=(
            {k: v["incumbent"] for k, v in cmp["metrics"].items()} if cmp is not None else None
        ),
        baseline_eval_set=cmp["eval_set"] if cmp is not None else None,
        baseline_version=cmp["incumbent"]["version"] if cmp is not None else None,
    )
    decision = decide(evidence, policy)
    promoted = record_and_promote(name, version, alias, decision)
    create_markdown_artifact(
        key="gate-decision",
        markdown=f"# Gate for @{alias}: {name} v{version}\n\n"
        + "\n".join(f"- {r}" for r in decision.reasons),
    )
    return Promotion(
        model_name=name,
        version=version,
        model_uri=uri,
        alias=alias,
        promoted=promoted,
        reasons=decision.reasons,
    )


@flow(name="lmops-promote")
def promote_flow(
    config: RunConfig,
    dataset: DatasetVersion,
    trained: TrainedModel,
    evaluation: EvalResult,
    cache_key: str = "",
) -> Promotion:
    """Register the candidate, decide on the gate policy, move the alias if it passed."""
    uri, version = register_stage(config, dataset, trained, evaluation, cache_key)
    return gate_stage(config, version, uri, trained, evaluation)
