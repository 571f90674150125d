"""Prefect flow: ingest sources into a validated, content-hashed dataset version.

    lmops ingest path/to/corpus/ [--config tiny]

``lmops.data.ingest.ingest`` runs the stages (hash → read → annotate → decide →
validate → publish); this flow makes each a task and adds the MLflow run and the
Prefect artifacts. An input whose version already exists is not processed again: the
flow says so and returns the published version.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from lmops.config import RunConfig
from lmops.corpus.sample import write_sample_corpus
from lmops.data.catalog import find_version, load_manifest
from lmops.data.ingest import IngestReport, ingest, report_from_manifest
from lmops.data.stage_publish import RejectedVersion
from lmops.evaluation.canaries import write_canary_file
from lmops.home import as_path, home
from lmops.run_heartbeat import keep_alive
from pipelines.notify import notify_failure
from pipelines.retry import transient_io_only

IO_RETRIES = dict(
    retries=2, retry_delay_seconds=2, retry_condition_fn=transient_io_only, cache_policy=NO_CACHE
)


class DatasetVersion(BaseModel):
    """What later stages need to know about the published version."""

    version_id: str
    path: str
    created: bool
    input: int
    accepted: int
    quarantined: int
    accepted_bytes: int
    reasons: dict[str, int]
    langs: dict[str, int]
    validation: str
    validation_passed: bool = True
    sources: list[str]
    stage_seconds: dict[str, float] = {}
    standard: dict = {}  # name, version, profile, digest, profiles


@task(name="resolve-sources", **IO_RETRIES)
def resolve_sources(sources: list[str], canaries: int = 0) -> list[str]:
    """The user's sources, or the built-in sample corpus written into LMOPS_HOME.

    With ``canaries`` > 0, a file of that many canary documents is added: the secrets
    the safety suite's PII-leak probe later asks the trained model for.
    """
    out = list(sources) or [str(p) for p in write_sample_corpus(home().samples)]
    if canaries:
        out.append(str(write_canary_file(home().samples, canaries)))
    return out


# Each stage's task name and options: IO stages retry transient IO errors, CPU stages
# (annotate, validate) do not: a retry would only repeat the same failure.
NO_RETRIES = dict(cache_policy=NO_CACHE)
STAGE_TASKS = {
    "hash": ("hash-sources", IO_RETRIES),
    "read": ("read-and-check-schema", IO_RETRIES),
    "annotate": ("annotate-signals", NO_RETRIES),
    "decide": ("decide-and-dedup", IO_RETRIES),
    "validate": ("validate-with-gx", NO_RETRIES),
    "publish": ("publish-version", IO_RETRIES),
}


def run_as_task(name: str, fn, *args, **kwargs):
    """``ingest``'s ``run_stage``: run the stage ``fn`` as its Prefect task."""
    task_name, options = STAGE_TASKS[name]
    return task(fn, name=task_name, **options)(*args, **kwargs)


@task(name="log-ingest-to-mlflow", **IO_RETRIES)
def stage_metrics(path: Path) -> dict[str, float]:
    """Per-stage seconds, rows/s and bytes/s of an ingest (as its manifest has them)."""
    rep = report_from_manifest(path, False, None, load_manifest(path).get("stage_seconds", {}))
    out = {}
    for stage, secs, rows, nbytes in rep.stage_rates():
        out |= {f"ingest/{stage}/seconds": secs, f"ingest/{stage}/rows_per_s": rows}
        out[f"ingest/{stage}/bytes_per_s"] = nbytes
    return out


def log_to_mlflow(ds: DatasetVersion, config: RunConfig, failed: bool = False) -> str:
    """An MLflow run per ingest: counts, plots, manifest, GX results and Data Docs.

    A version that failed its standard (``failed``) gets the same evidence, from its
    ``.rejected-<id>`` folder, in a run ended FAILED.
    """
    import mlflow

    from lmops.tracking import configure_mlflow

    configure_mlflow(home(), config.registry.experiment)
    path = as_path(ds.path)
    manifest = load_manifest(path)
    executor = manifest.get("executor", {})
    run = mlflow.start_run(
        run_name=f"ingest-{ds.version_id}",
        tags={
            "lmops.kind": "ingest",
            "lmops.dataset_version": ds.version_id,
            "lmops.data_profile": ds.standard.get("profile", ""),
            "lmops.data_standard": f"{ds.standard.get('name')} {ds.standard.get('version')}",
            "lmops.standard_digest": ds.standard.get("digest", ""),
            "lmops.validation": ds.validation,
            "lmops.ingest_executor": executor.get("kind", "local"),
            "lmops.cluster_nodes": str(executor.get("nodes", 1)),
            "lmops.cluster_cpus": str(executor.get("cpus", "")),
        },
    )
    keep_alive(run.info.run_id)
    status = "FAILED"
    try:
        mlflow.log_metrics(
            {
                "data/input": ds.input,
                "data/accepted": ds.accepted,
                "data/quarantined": ds.quarantined,
                "data/accepted_bytes": ds.accepted_bytes,
                "data/reject_rate": manifest["counts"]["reject_rate"],
                **{f"data/reason/{k.replace(':', '.')}": v for k, v in ds.reasons.items()},
                **stage_metrics(path),
            }
        )
        mlflow.log_artifact(str(path / "manifest.json"), "data")
        mlflow.log_dict(
            {"suite": manifest["expectation_suite"], **manifest["validation"]},
            "data/validation.json",
        )
        for png in sorted(path.glob("plot_*.png")):
            mlflow.log_artifact(str(png), "data/plots")
        if (path / "data_docs").exists():
            mlflow.log_artifacts(str(path / "data_docs"), "data/data_docs")
        status = "FAILED" if failed else "FINISHED"
        return run.info.run_id
    finally:
        mlflow.end_run(status)


def publish_ingest_artifacts(ds: DatasetVersion, cached: bool, rejected: bool = False) -> None:
    rows = [{"rule": k, "count": v} for k, v in sorted(ds.reasons.items())]
    create_table_artifact(
        key="quarantine-by-rule",
        table=rows or [{"rule": "-", "count": 0}],
        description=f"Quarantined records per rule in {ds.version_id}",
    )
    stages = "".join(f"| {k} | {v:.2f} |\n" for k, v in ds.stage_seconds.items())
    if cached:
        state = "**Cache hit**: this input was already published; ingest skipped.\n\n"
    elif rejected:
        state = "**Rejected**: the dataset failed its standard; nothing was published.\n\n"
    else:
        state = ""
    create_markdown_artifact(
        key="dataset-version",
        markdown=(
            f"# Dataset {ds.version_id}\n\n{state}"
            f"- input **{ds.input}** = accepted **{ds.accepted}** + quarantined "
            f"**{ds.quarantined}**\n- languages: {ds.langs}\n- {ds.validation}\n"
            f"- {'evidence kept in' if rejected else 'published'}: `{ds.path}`\n\n"
            f"| stage | seconds |\n|---|---|\n{stages}"
        ),
        description="Accounting of the ingest run",
    )
    docs = as_path(ds.path) / "data_docs" / "index.html"
    if docs.exists():
        create_link_artifact(
            key="data-docs",
            link=docs.as_uri(),
            description="Great Expectations Data Docs for this version",
        )


def _to_model(rep: IngestReport, sources: list[str]) -> DatasetVersion:
    m = load_manifest(rep.path)
    return DatasetVersion(
        version_id=rep.version_id,
        path=str(rep.path),
        created=rep.created,
        input=rep.input,
        accepted=rep.accepted,
        quarantined=rep.quarantined,
        accepted_bytes=rep.accepted_bytes,
        reasons=dict(rep.reasons),
        langs=dict(rep.langs),
        validation=(
            f"GX suite {m['expectation_suite']}: "
            f"{m['validation']['evaluated'] - len(m['validation']['failures'])}/"
            f"{m['validation']['evaluated']} passed"
        ),
        validation_passed=not m["validation"]["failures"],
        sources=sources,
        stage_seconds=rep.stage_seconds or m.get("stage_seconds", {}),
        standard=m.get("standard", {}),
    )


def published(ref: str) -> DatasetVersion:
    """A dataset version already published in this home, by id, prefix or ``latest``.

    Only versions that passed their standard are published, so training may use any.
    """
    m = find_version(home().datasets, ref)
    rep = report_from_manifest(home().datasets / m["version_id"], False, None, {})
    return _to_model(rep, [s["path"] for s in m["sources"]])


@flow(name="lmops-ingest", on_failure=[notify_failure], on_crashed=[notify_failure])
def ingest_flow(config: RunConfig, sources: list[str] | None = None) -> DatasetVersion:
    """``lmops.data.ingest.ingest`` with each stage a task, then MLflow and artifacts.

    A dataset that fails its standard is logged too (an MLflow run ended FAILED, with
    the evidence of its ``.rejected-<id>`` folder) before the error is raised again.
    """
    resolved = resolve_sources(list(sources or config.data.sources), config.data.canaries)
    try:
        rep = ingest(resolved, config.data, home().datasets, run_stage=run_as_task)
    except RejectedVersion as rejected:
        ds = _to_model(report_from_manifest(rejected.path, False, None, {}), resolved)
        try:
            log_to_mlflow(ds, config, failed=True)
            publish_ingest_artifacts(ds, cached=False, rejected=True)
        except Exception as e:  # the evidence may be lost; the verdict must still reach the user
            get_run_logger().warning("could not log the rejected %s: %s", ds.version_id, e)
        raise
    ds = _to_model(rep, resolved)
    if not rep.cached:
        log_to_mlflow(ds, config)
    publish_ingest_artifacts(ds, cached=rep.cached)
    return ds
