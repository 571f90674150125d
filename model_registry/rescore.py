"""Evaluate a registered version on an evaluation set, once per (version, set, suite).

Used by ``lmops evaluate`` and to re-score the incumbent on a candidate's
evaluation set, so the gate always compares like with like. A finished evaluation
run with the same version, evaluation set and suite digest is reused instead of
scoring again.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient

from lmops.config import EvalConfig
from lmops.evaluation.loading import load_for_eval, resolve_version
from lmops.evaluation.scorer import EvalData
from lmops.evaluation.suite import SuiteReport, run_suite
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


def evaluate_registered(
    uri: str,
    cfg: EvalConfig,
    data: EvalData,
    experiment_id: str,
    dataset_path: str | None = None,
    strict: bool = False,
    use_cache: bool = True,
) -> VersionEvaluation:
    """Score the version behind ``uri`` on ``data`` and record an evaluation run."""
    from lmops.evaluation.report import render_report

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
