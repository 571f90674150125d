"""Evaluation results in MLflow: metrics on the LoggedModel, tables, report, cache.

Suite metrics are logged with ``model_id`` and the evaluation set as ``dataset``, so
they belong to the LoggedModel and MLflow can rank and compare models on them.
Each evaluation of a registered version on an evaluation set is one run tagged
``lmops.kind=evaluation``; :func:`find_evaluation` looks it up, which makes the
re-scoring of an incumbent a cache hit for the same (version, eval set).
"""

from __future__ import annotations

import json

import mlflow
from mlflow import MlflowClient

from lmops.home import as_path, as_uri
from lmops.run_heartbeat import keep_alive
from model_registry import tags as T


def eval_dataset(eval_set_id: str, dataset_path: str | None):
    """The evaluation set as an MLflow dataset (digest = eval set id)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    uri = as_uri(as_path(dataset_path)) if dataset_path else f"lmops://eval-set/{eval_set_id}"
    try:
        source = resolve_dataset_source(uri)
    except Exception:  # no resolver for the placeholder scheme
        from mlflow.data.http_dataset_source import HTTPDatasetSource

        source = HTTPDatasetSource(url=uri)
    return MetaDataset(source=source, name=eval_set_id, digest=eval_set_id[3:])


def _table(rows: list[dict]):
    import pandas as pd

    df = pd.DataFrame(rows)
    for col in df.columns:  # nested values (lists of categories) as JSON text
        if df[col].map(lambda v: isinstance(v, (list, dict))).any():
            df[col] = df[col].map(lambda v: json.dumps(v, ensure_ascii=False))
    return df


def log_suite_results(
    run_id: str,
    report,
    model_id: str | None = None,
    dataset=None,
    comparison: dict | None = None,
    html: str | None = None,
) -> None:
    """Metrics (linked to the LoggedModel when ``model_id`` is given), tables, report."""
    client = MlflowClient()
    if dataset is not None:
        with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
            mlflow.log_input(dataset, context="evaluation")
    mlflow.log_metrics(report.metrics, run_id=run_id, model_id=model_id, dataset=dataset)
    for name, rows in report.tables.items():
        if rows:
            mlflow.log_table(_table(rows), f"eval/{name}.json", run_id=run_id)
    summary = {
        "eval_set": report.eval_set_id,
        "scorers": report.scorers,
        "skipped": report.skipped,
        "seconds": report.seconds,
    }
    client.log_dict(run_id, summary, "eval/suite.json")
    if comparison is not None:
        client.log_dict(run_id, comparison, "eval/comparison.json")
    if html is not None:
        client.log_text(run_id, html, "eval/report.html")


def find_evaluation(name: str, version: str, eval_set_id: str, config_digest: str) -> dict | None:
    """The newest finished evaluation of ``name`` v``version`` on ``eval_set_id``

    with the same suite settings (``config_digest`` of the ``EvalConfig``)."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=(
            f"tags.`{T.RUN_KIND}` = 'evaluation' and "
            f"tags.`{T.EVALUATED_MODEL}` = '{name}/{version}' and "
            f"tags.`{T.EVAL_SET}` = '{eval_set_id}' and "
            f"tags.`{T.EVAL_CONFIG_DIGEST}` = '{config_digest}' and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        return None
    run = runs[0]
    return {"run_id": run.info.run_id, "metrics": dict(run.data.metrics)}


def start_evaluation_run(
    experiment_id: str, name: str, version: str, eval_set_id: str, config_digest: str
) -> str:
    run = MlflowClient().create_run(
        experiment_id,
        run_name=f"eval-{name}-v{version}-{eval_set_id}",
        tags={
            T.RUN_KIND: "evaluation",
            T.EVALUATED_MODEL: f"{name}/{version}",
            T.EVAL_SET: eval_set_id,
            T.EVAL_CONFIG_DIGEST: config_digest,
        },
    )
    keep_alive(run.info.run_id)  # a killed evaluation is reaped, not left RUNNING
    return run.info.run_id
