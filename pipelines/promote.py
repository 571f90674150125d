"""Prefect flow: register the model with lineage and evidence, gate it, promote to @staging."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from lmops.config import RunConfig
from lmops.progress import reporter
from model_registry.gates import Evidence, decide, load_policy
from model_registry.model_card import render_model_card
from model_registry.promote import record_and_promote
from model_registry.register import code_commit, current_holder, log_and_register
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
) -> tuple[str, str, dict]:
    lineage = {
        "lmops.dataset_version": ds.version_id,
        "lmops.mlflow_run": trained.run_id,
        "lmops.code_commit": code_commit(),
        "lmops.config": config.name,
        "lmops.config_digest": config.digest(),
        "lmops.tokenizer": trained.tokenizer_id,
        "lmops.eval_set": f"{ds.version_id}/{trained.tokenizer_id}",
    }
    card = render_model_card(
        config.registry.model_name,
        config.model_dump(mode="json"),
        ds.model_dump(),
        ev.metrics,
        ev.samples,
        lineage,
    )
    evidence_tags = {f"lmops.{k.replace('/', '.')}": f"{v:.6g}" for k, v in ev.metrics.items()}
    if cache_key:
        evidence_tags["lmops.train_cache_key"] = cache_key
    with (
        reporter().task("register: logging model to MLflow"),
        mlflow.start_run(run_id=trained.run_id),
    ):
        mlflow.log_text(card, "model_card.md")
        uri, version = log_and_register(
            trained.model_dir, config.registry.model_name, {**lineage, **evidence_tags}, card
        )
    MlflowClient().update_model_version(
        config.registry.model_name, version, description=version_description(ds, trained, ev)
    )
    return uri, version, lineage


def version_description(ds: DatasetVersion, trained: TrainedModel, ev: EvalResult) -> str:
    """What a reviewer reads first on the version page in the MLflow UI."""
    m = ev.metrics
    sample = ev.samples[0] if ev.samples else {"prompt": "", "completion": ""}
    return (
        f"Trained on dataset `{ds.version_id}` ({ds.accepted} accepted, {ds.quarantined} "
        f"quarantined; {ds.validation}) with tokenizer `{trained.tokenizer_id}` in run "
        f"`{trained.run_id}`.\n\nHeld-out perplexity **{m['eval/perplexity']:.2f}** over "
        f"{m['eval/tokens_scored']:.0f} tokens; {m['eval/parameters']:.0f} parameters.\n\n"
        f"Sample: `{sample['prompt']}` → `{sample['completion'][:120]!r}`\n\n"
        "Gate decision and audit trail: tags `lmops.gate.*` and `lmops.audit.*`; "
        "model card: run artifact `model_card.md`."
    )


@task(
    name="gate-and-promote", retries=2, retry_delay_seconds=3, retry_condition_fn=transient_io_only
)
def gate_stage(
    config: RunConfig, version: str, uri: str, lineage: dict, trained: TrainedModel, ev: EvalResult
) -> Promotion:
    policy = load_policy(config.registry.policy)
    alias = policy.get("alias", "staging")
    holder = current_holder(config.registry.model_name, alias)
    base_metrics = base_set = base_version = None
    if holder is not None and str(holder.version) != version:
        base_version = str(holder.version)
        base_set = holder.tags.get("lmops.eval_set")
        base_metrics = {"eval/perplexity": float(holder.tags.get("lmops.eval.perplexity", "inf"))}
    evidence = Evidence(
        metrics=ev.metrics,
        vocab_size=trained.vocab_size,
        eval_set=lineage["lmops.eval_set"],
        baseline_metrics=base_metrics,
        baseline_eval_set=base_set,
        baseline_version=base_version,
    )
    decision = decide(evidence, policy)
    promoted = record_and_promote(config.registry.model_name, version, alias, decision)
    create_markdown_artifact(
        key="gate-decision",
        markdown=f"# Gate for @{alias}: {config.registry.model_name} v{version}\n\n"
        + "\n".join(f"- {r}" for r in decision.reasons),
    )
    return Promotion(
        model_name=config.registry.model_name,
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
    uri, version, lineage = register_stage(config, dataset, trained, evaluation, cache_key)
    return gate_stage(config, version, uri, lineage, trained, evaluation)
