"""Prefect flow: register the model, sign its files and evidence, gate it, promote to @staging."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from lmops.config import RunConfig
from lmops.progress import reporter
from lmops.run_heartbeat import keep_alive
from model_registry import tags as T
from model_registry.evaluations import eval_dataset
from model_registry.evidence import evidence_tags
from model_registry.identity import current_identity
from model_registry.model_card import card_for_run
from model_registry.promotion import promote
from model_registry.register import code_commit, ingest_run_id, log_and_register
from model_registry.signed_evidence import sign_version
from pipelines.evaluate import EvalResult
from pipelines.events import emit_alias_moved
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
    gated: bool = True  # False: registered only (an encoder is not gated for @staging)


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
        T.REGISTERED_BY: current_identity().name,
        T.DATA_VALIDATION: "passed" if ds.validation_passed else "failed",
        T.OBJECTIVE: trained.objective,
    }
    std = ds.standard or {}  # the manifest's standard section
    if std.get("digest"):
        lineage[T.DATA_STANDARD] = f"{std.get('name')} {std.get('version')}"
        lineage[T.DATA_PROFILE] = std.get("profile", "")
        lineage[T.STANDARD_DIGEST] = std["digest"]
    if trained.parent_model:
        lineage[T.PARENT_MODEL] = trained.parent_model
    if trained.lora:
        lineage[T.LORA] = trained.lora
    ingest_run = ingest_run_id(ds.version_id)
    if ingest_run:
        lineage[T.INGEST_RUN] = ingest_run
    card = card_for_run(config, ds, ev, lineage)
    tags = {**lineage, **evidence_tags(ev.metrics), T.EVAL_SET: ev.eval_set_id}
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
        keep_alive(trained.run_id)  # RUNNING again: its old heartbeat would read as dead
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
    # Signed last, over the files as the artifact store holds them: what every gate,
    # `lmops verify` and `lmops serve` check (model_registry/signed_evidence.py).
    with reporter().task("register: signing files and evidence"):
        sign_version(config.registry.model_name, version, ev.metrics, ev.eval_set_id, lineage)
    return uri, version


@task(
    name="gate-and-promote", retries=2, retry_delay_seconds=3, retry_condition_fn=transient_io_only
)
def gate_stage(config: RunConfig, version: str, uri: str, ev: EvalResult) -> Promotion:
    """Gate the new version for @staging; the comparison is the one evaluation made."""
    name = config.registry.model_name

    def rescore(incumbent: str, eval_set: str) -> dict[str, float] | None:
        cmp = ev.comparison
        if cmp and cmp["incumbent"]["version"] == incumbent and cmp["eval_set"] == eval_set:
            return {k: v["incumbent"] for k, v in cmp["metrics"].items()}
        return None  # the holder changed since evaluation: the gate refuses, on record

    out = promote(name, version, "staging", rescore=rescore)
    decision = out.decision
    if out.moved:
        e, why = out.event, f"{out.event.policy} gate passed"
        emit_alias_moved(name, "staging", e.from_version, version, e.actor, why)
    create_markdown_artifact(
        key="gate-decision",
        markdown=f"# Gate for @staging: {name} v{version}\n\n"
        f"Policy `{decision.policy}` v{decision.policy_version} "
        f"(digest `{decision.policy_digest}`)\n\n" + "\n".join(f"- {r}" for r in decision.reasons),
    )
    return Promotion(
        model_name=name,
        version=version,
        model_uri=uri,
        alias="staging",
        promoted=decision.passed,
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
    """Register the candidate, decide on the gate policy, move the alias if it passed.

    An encoder (MLM) is registered with its evidence but not gated: @staging and
    @production serve text generation, which a masked LM does not do.
    """
    uri, version = register_stage(config, dataset, trained, evaluation, cache_key)
    if evaluation.kind == "mlm":
        return Promotion(
            model_name=config.registry.model_name,
            version=version,
            model_uri=uri,
            alias="staging",
            promoted=False,
            gated=False,
            reasons=[
                "registered only: an encoder (masked LM) is not gated for @staging, "
                "whose models serve text generation"
            ],
        )
    return gate_stage(config, version, uri, evaluation)
