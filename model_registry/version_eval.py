"""Evaluate a registered version on a dataset version's held-out set: the one home of it.

``lmops evaluate`` (through the ``lmops-evaluate-version`` flow), the pipeline's
re-scoring of the incumbent and a gate's ``rescore`` all call :func:`evaluate_version`,
so the gate always compares like with like. A finished evaluation run with the same
version, evaluation set and suite digest is reused instead of scoring again. How the
results are stored in MLflow is :mod:`model_registry.evaluations`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlflow import MlflowClient

from lmops.config import RunConfig
from lmops.evaluation.eval_data import load_eval_data
from lmops.evaluation.loading import load_for_eval, resolve_version
from lmops.evaluation.scorer import EvalData
from lmops.evaluation.suite import SuiteReport, run_suite
from lmops.home import as_path, home
from lmops.tracking import configure_mlflow
from model_registry import tags as T
from model_registry.evaluations import (
    eval_dataset,
    find_evaluation,
    log_suite_results,
    start_evaluation_run,
)


@dataclass
class VersionEvaluation:
    name: str
    version: str
    eval_set_id: str
    metrics: dict[str, float]
    run_id: str
    cached: bool
    report: SuiteReport | None = None  # None on a cache hit

    @property
    def ref(self) -> dict:
        return {"name": self.name, "version": self.version, "run_id": self.run_id}


def eval_data(config: RunConfig, dataset_path: str) -> EvalData:
    """The held-out set of the dataset version at ``dataset_path``, as ``config`` cuts it."""
    return load_eval_data(
        as_path(dataset_path),
        config.data.val_fraction,
        config.eval.max_held_out_docs,
        config.eval.max_train_docs,
    )


def evaluate_version(
    uri: str,
    config: RunConfig,
    dataset_path: str,
    strict: bool = False,
    use_cache: bool = True,
    data: EvalData | None = None,
) -> VersionEvaluation:
    """Score the version behind ``uri`` with ``config``'s suite and record an evaluation run.

    The run goes to ``config``'s experiment; ``strict`` makes a scorer that does not apply
    to the model an error instead of a skip. ``data`` is the held-out set when the caller
    has already cut it from ``dataset_path``.
    """
    from lmops.evaluation.report import render_report

    data = data or eval_data(config, dataset_path)
    experiment_id = configure_mlflow(home(), config.registry.experiment)
    cfg = config.eval
    ref = resolve_version(uri)
    name, version = ref["name"], ref["version"]
    digest = cfg.digest()
    if use_cache:
        hit = find_evaluation(name, version, data.eval_set_id, digest)
        if hit is not None:
            return VersionEvaluation(
                name, version, data.eval_set_id, hit["metrics"], hit["run_id"], True
            )
    lm = load_for_eval(uri, cfg.device)
    report = run_suite(lm.model, lm.tokenizer, lm.kind, data, cfg, strict=strict)
    run_id = start_evaluation_run(experiment_id, name, version, data.eval_set_id, digest)
    client = MlflowClient()
    try:
        html = render_report(
            report.metrics, report.tables, None, f"{name} v{version} on {data.eval_set_id}"
        )
        log_suite_results(
            run_id,
            report,
            model_id=ref.get("model_id"),
            dataset=eval_dataset(data.eval_set_id, dataset_path),
            html=html,
        )
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return VersionEvaluation(name, version, data.eval_set_id, report.metrics, run_id, False, report)


def rescorer(config: RunConfig, dataset_path: str) -> Callable[[str, str], dict[str, float] | None]:
    """A gate's ``rescore(incumbent, eval_set)``: the incumbent on the candidate's set.

    Cached per (version, eval set, suite), so a promotion re-scores only once. None
    when ``dataset_path`` does not hold ``eval_set``.
    """

    def rescore(incumbent: str, eval_set: str) -> dict[str, float] | None:
        data = eval_data(config, dataset_path)
        if data.eval_set_id != eval_set:  # not the candidate's set: scoring it would not count
            return None
        uri = f"models:/{config.registry.model_name}/{incumbent}"
        return evaluate_version(uri, config, dataset_path, data=data).metrics

    return rescore


def comparison(
    candidate: dict[str, float],
    incumbent: dict[str, float],
    incumbent_ref: dict,
    eval_set_id: str,
) -> dict:
    """Candidate vs incumbent on the metrics both have, for the report and the gate."""
    shared = sorted(
        k for k in set(candidate) & set(incumbent) if k.split("/", 1)[0] in T.EVIDENCE_FAMILIES
    )
    return {
        "incumbent": incumbent_ref,
        "eval_set": eval_set_id,
        "metrics": {k: {"candidate": candidate[k], "incumbent": incumbent[k]} for k in shared},
    }
