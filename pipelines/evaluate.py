"""Prefect flows: the standard evaluation suite for a candidate or any registered version.

    lmops evaluate models:/lmops-lm@staging [--suite standard]

``evaluate_flow`` scores the freshly trained candidate on its dataset's held-out
set, re-scores the current holder of the gated alias on that same set (cached per
version and set), and logs tables, the comparison and the HTML report to the
training run. Metrics are logged to the LoggedModel at registration, where the
model id exists. ``evaluate_version_flow`` evaluates any registered version. Scoring
a registered version, and its cache, is :mod:`model_registry.version_eval`'s.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from lmops.config import RunConfig
from lmops.evaluation.loading import load_for_eval
from lmops.evaluation.suite import run_suite
from lmops.home import as_path, home
from lmops.progress import reporter
from model_registry.evaluations import log_suite_results
from model_registry.version_eval import comparison as compare
from model_registry.version_eval import eval_data, evaluate_version, rescorer
from model_registry.versions import get_version, holder
from pipelines.ingest import DatasetVersion
from pipelines.train import TrainedModel


class EvalResult(BaseModel):
    """The suite's outcome for one model on one evaluation set."""

    metrics: dict[str, float]
    tables: dict[str, list[dict]]
    eval_set_id: str
    scorers: list[str]
    skipped: dict[str, str] = {}
    seconds: dict[str, float] = {}
    comparison: dict | None = None
    report_path: str | None = None
    kind: str = "causal"

    def samples(self, strategy: str = "greedy") -> list[dict]:
        return [r for r in self.tables.get("eval_samples", []) if r.get("strategy") == strategy]


@task(name="evaluate-candidate", cache_policy=NO_CACHE)
def evaluate_candidate(config: RunConfig, ds: DatasetVersion, trained: TrainedModel) -> EvalResult:
    """Run the configured suite on the trained model folder."""
    data = eval_data(config, ds.path)
    with reporter().task(f"evaluate: {len(config.eval.scorers)} scorers"):
        lm = load_for_eval(trained.model_dir, config.eval.device)
        rep = run_suite(lm.model, lm.tokenizer, lm.kind, data, config.eval)
    return EvalResult(
        metrics=rep.metrics,
        tables=rep.tables,
        eval_set_id=rep.eval_set_id,
        scorers=rep.scorers,
        skipped=rep.skipped,
        seconds=rep.seconds,
        kind=lm.kind,
    )


@task(name="rescore-incumbent", cache_policy=NO_CACHE)
def rescore_incumbent(config: RunConfig, ds: DatasetVersion, alias: str) -> dict | None:
    """The holder of ``alias`` scored on the candidate's evaluation set, or None."""
    version = holder(config.registry.model_name, alias)
    if version is None:
        return None
    uri = f"models:/{config.registry.model_name}/{version}"
    with reporter().task(f"evaluate: re-scoring incumbent v{version}"):
        ev = evaluate_version(uri, config, ds.path)
    return {**ev.ref, "alias": alias, "cached": ev.cached, "metrics": ev.metrics}


@task(name="log-evaluation", retries=3, retry_delay_seconds=2, cache_policy=NO_CACHE)
def log_evaluation(run_id: str, result: EvalResult, title: str) -> str:
    """Tables, comparison and the HTML report on the training run; returns the report path."""
    from lmops.evaluation.report import write_report
    from lmops.evaluation.suite import SuiteReport

    path = home().root / "runs" / run_id / "eval_report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_report(path, result.metrics, result.tables, result.comparison, title)
    html = path.read_text(encoding="utf-8")
    # Metrics go to the LoggedModel at registration; only the rest is logged here.
    rep = SuiteReport(
        {}, result.tables, result.eval_set_id, result.scorers, result.skipped, result.seconds
    )
    log_suite_results(run_id, rep, comparison=result.comparison, html=html)
    greedy = result.samples()
    if greedy:
        create_table_artifact(
            key="eval-samples",
            table=[{k: r[k] for k in ("prompt", "completion")} for r in greedy],
            description="Greedy generations for the standard prompts",
        )
    return str(path)


@flow(name="lmops-evaluate")
def evaluate_flow(config: RunConfig, dataset: DatasetVersion, trained: TrainedModel) -> EvalResult:
    """Score the candidate, re-score the incumbent on the same set, record both."""
    result = evaluate_candidate(config, dataset, trained)
    alias = "staging"  # the alias a pipeline run's candidate is gated for
    incumbent = rescore_incumbent(config, dataset, alias)
    if incumbent is not None:
        ref = {k: incumbent[k] for k in ("name", "version", "alias", "run_id", "cached")}
        result.comparison = compare(result.metrics, incumbent["metrics"], ref, result.eval_set_id)
    title = f"{config.registry.model_name} candidate (run {trained.run_id})"
    result.report_path = log_evaluation(trained.run_id, result, title)
    return result


class VersionEvalResult(BaseModel):
    name: str
    version: str
    eval_set_id: str
    dataset_version: str
    run_id: str
    cached: bool
    metrics: dict[str, float]
    skipped: dict[str, str] = {}


@flow(name="lmops-evaluate-version")
def evaluate_version_flow(
    model_uri: str, config: RunConfig, dataset_path: str, use_cache: bool = True
) -> VersionEvalResult:
    """Evaluate any registered version on a dataset version's held-out set."""
    with reporter().task(f"evaluate: {model_uri}"):
        ev = evaluate_version(model_uri, config, dataset_path, strict=False, use_cache=use_cache)
    skipped = ev.report.skipped if ev.report else {}
    create_markdown_artifact(
        key="evaluation",
        markdown=f"# {ev.name} v{ev.version} on `{ev.eval_set_id}`\n\n"
        + ("Cached: an evaluation with these settings already exists.\n\n" if ev.cached else "")
        + "| metric | value |\n|---|---|\n"
        + "".join(f"| {k} | {v:.4g} |\n" for k, v in sorted(ev.metrics.items())),
    )
    return VersionEvalResult(
        name=ev.name,
        version=ev.version,
        eval_set_id=ev.eval_set_id,
        dataset_version=as_path(dataset_path).name,
        run_id=ev.run_id,
        cached=ev.cached,
        metrics=ev.metrics,
        skipped=skipped,
    )


def rescorer_for_version(name: str, version: str):
    """Re-scores the incumbent on this version's eval set, from its own run config."""
    from lmops.data.catalog import find_version
    from model_registry import tags as T
    from pipelines.run_config import load_run_config, named_configs

    tags = get_version(name, version).tags
    cfg_name = tags.get(T.CONFIG, "cpu")
    cfg = load_run_config(cfg_name if cfg_name in named_configs() else "cpu")
    ds = tags.get(T.DATASET_VERSION)
    if ds is None:
        return None
    path = home().datasets / find_version(home().datasets, ds)["version_id"]
    return rescorer(cfg, str(path))
