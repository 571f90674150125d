"""Prefect flow: ingest sources into a validated, content-hashed dataset version.

    lmops ingest path/to/corpus/ [--config tiny]

One task per stage (read → annotate → decide → validate → publish); the work is
in ``lmops.data.ingest``. An input whose version already exists is not processed
again: the flow says so and returns the published version.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from lmops.config import RunConfig
from lmops.corpus.sample import write_sample_corpus
from lmops.data import ingest as lib
from lmops.data.publish import StagedVersion
from lmops.data.rules import load_standard
from lmops.home import home
from lmops.progress import reporter
from lmops.safety.canaries import write_canary_file
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


@task(name="hash-sources", **IO_RETRIES)
def hash_sources(sources: list[str], config: RunConfig) -> tuple[lib.SourceSet, str, bool]:
    """The hashed files, the version id of this input, and whether it is already published."""
    src = lib.hash_sources(sources)
    vid = lib.version_id_for(load_standard(config.data), config.data, src.files, src.hashes)
    return src, vid, (home().datasets / vid / "manifest.json").exists()


@task(name="read-and-check-schema", **IO_RETRIES)
def read_stage(src: lib.SourceSet, config: RunConfig, staged: StagedVersion):
    with reporter().task("ingest: records read") as advance:
        return lib.stage_read(src, config.data, load_standard(config.data), staged, advance)


@task(name="annotate-signals", cache_policy=NO_CACHE)
def annotate_stage(staged: StagedVersion, config: RunConfig, n_candidates: int) -> int:
    """Normalise, language id, quality, toxicity, PII, MinHash: local pool or Ray Data."""
    with reporter().task("ingest: documents scored", total=n_candidates) as advance:
        return lib.stage_annotate(
            staged, load_standard(config.data), config.data, n_candidates, advance
        )


@task(name="decide-and-dedup", **IO_RETRIES)
def decide_stage(staged: StagedVersion, config: RunConfig, read):
    return lib.stage_decide(staged, load_standard(config.data), config.data, read, home().datasets)


@task(name="validate-with-gx", cache_policy=NO_CACHE)
def validate_stage(staged: StagedVersion, config: RunConfig, stats: dict):
    with reporter().task("ingest: Great Expectations"):
        return lib.stage_validate(staged, load_standard(config.data), config.data, stats)


@task(name="publish-version", **IO_RETRIES)
def publish_stage(staged: StagedVersion, manifest: dict, outcome) -> tuple[str, bool]:
    path, created = lib.stage_publish(staged, manifest, outcome, home().datasets)
    return str(path), created


@task(name="log-ingest-to-mlflow", **IO_RETRIES)
def log_to_mlflow(ds: DatasetVersion, config: RunConfig) -> str:
    """An MLflow run per published version: counts, plots, manifest and Data Docs."""
    import mlflow

    from lmops.tracking import configure_mlflow

    configure_mlflow(home(), config.registry.experiment)
    path = Path(ds.path)
    with mlflow.start_run(
        run_name=f"ingest-{ds.version_id}",
        tags={"lmops.kind": "ingest", "lmops.dataset_version": ds.version_id},
    ) as run:
        mlflow.log_metrics(
            {
                "data/input": ds.input,
                "data/accepted": ds.accepted,
                "data/quarantined": ds.quarantined,
                "data/accepted_bytes": ds.accepted_bytes,
                **{f"data/reason/{k.replace(':', '.')}": v for k, v in ds.reasons.items()},
            }
        )
        mlflow.log_artifact(str(path / "manifest.json"), "data")
        for png in sorted(path.glob("plot_*.png")):
            mlflow.log_artifact(str(png), "data/plots")
        if (path / "data_docs").exists():
            mlflow.log_artifacts(str(path / "data_docs"), "data/data_docs")
        return run.info.run_id


def publish_ingest_artifacts(ds: DatasetVersion, cached: bool) -> None:
    rows = [{"rule": k, "count": v} for k, v in sorted(ds.reasons.items())]
    create_table_artifact(
        key="quarantine-by-rule",
        table=rows or [{"rule": "-", "count": 0}],
        description=f"Quarantined records per rule in {ds.version_id}",
    )
    stages = "".join(f"| {k} | {v:.2f} |\n" for k, v in ds.stage_seconds.items())
    create_markdown_artifact(
        key="dataset-version",
        markdown=(
            f"# Dataset {ds.version_id}\n\n"
            + (
                "**Cache hit**: this input was already published; ingest skipped.\n\n"
                if cached
                else ""
            )
            + f"- input **{ds.input}** = accepted **{ds.accepted}** + quarantined "
            f"**{ds.quarantined}**\n- languages: {ds.langs}\n- {ds.validation}\n"
            f"- published: `{ds.path}`\n\n| stage | seconds |\n|---|---|\n{stages}"
        ),
        description="Accounting of the ingest run",
    )
    docs = Path(ds.path) / "data_docs" / "index.html"
    if docs.exists():
        create_link_artifact(
            key="data-docs",
            link=docs.as_uri(),
            description="Great Expectations Data Docs for this version",
        )


def _to_model(rep: lib.IngestReport, sources: list[str]) -> DatasetVersion:
    m = lib.load_manifest(rep.path)
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
    )


def published(ref: str) -> DatasetVersion:
    """A dataset version already published in this home, by id, prefix or ``latest``.

    Only versions that passed their standard are published, so training may use any.
    """
    from lmops.data.catalog import find_version

    m = find_version(home().datasets, ref)
    rep = lib.report_from_manifest(home().datasets / m["version_id"], False, None, {})
    return _to_model(rep, [s["path"] for s in m["sources"]])


@flow(name="lmops-ingest", on_failure=[notify_failure], on_crashed=[notify_failure])
def ingest_flow(config: RunConfig, sources: list[str] | None = None) -> DatasetVersion:
    """Read → annotate → decide → validate (GX) → publish, with the accounting checked."""
    resolved = resolve_sources(list(sources or config.data.sources), config.data.canaries)
    src, version_id, exists = hash_sources(resolved, config)
    if exists:
        rep = lib.report_from_manifest(home().datasets / version_id, False, None, {})
        ds = _to_model(rep, resolved)
        publish_ingest_artifacts(ds, cached=True)
        return ds
    staged = StagedVersion(home().datasets)
    times: dict[str, float] = {}
    try:
        t = time.perf_counter()
        read = read_stage(src, config, staged)
        times["read"] = time.perf_counter() - t
        t = time.perf_counter()
        annotate_stage(staged, config, read.n_candidates)
        times["annotate"] = time.perf_counter() - t
        t = time.perf_counter()
        dec = decide_stage(staged, config, read)
        times["decide"] = time.perf_counter() - t
        stats = lib.dataset_stats(read, dec)
        t = time.perf_counter()
        outcome = validate_stage(staged, config, stats)
        times["validate"] = time.perf_counter() - t
        manifest = lib.build_manifest(
            load_standard(config.data), config.data, read, dec, stats, outcome, times
        )
        path, created = publish_stage(staged, manifest, outcome)
    except BaseException:
        staged.discard()
        raise
    ds = _to_model(lib.report_from_manifest(Path(path), created, outcome, times), resolved)
    log_to_mlflow(ds, config)
    publish_ingest_artifacts(ds, cached=False)
    return ds
