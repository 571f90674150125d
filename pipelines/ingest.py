"""Prefect flow: ingest sources into a validated, content-hashed dataset version.

lmops ingest path/to/corpus/ [--config tiny]
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel

from lmops.config import RunConfig
from lmops.corpus.sample import write_sample_corpus
from lmops.data.ingest import ingest
from lmops.home import home
from lmops.progress import reporter
from pipelines.retry import transient_io_only


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
    sources: list[str]


@task(
    name="resolve-sources", retries=2, retry_delay_seconds=1, retry_condition_fn=transient_io_only
)
def resolve_sources(sources: list[str]) -> list[str]:
    """The user's sources, or the built-in sample corpus written into LMOPS_HOME."""
    if sources:
        return sources
    return [str(p) for p in write_sample_corpus(home().samples)]


@task(
    name="ingest-and-validate",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=transient_io_only,
)
def ingest_and_validate(sources: list[str], config: RunConfig) -> DatasetVersion:
    """Stream every record through the standard; GX validates before publishing."""
    with reporter().task("ingest: records read") as advance:
        rep = ingest(sources, config.data, home().datasets, progress=advance)
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
        validation=rep.validation.summary(),
        sources=sources,
    )


def publish_ingest_artifacts(ds: DatasetVersion) -> None:
    rows = [{"rule": k, "count": v} for k, v in sorted(ds.reasons.items())]
    create_table_artifact(
        key="quarantine-by-rule",
        table=rows or [{"rule": "-", "count": 0}],
        description=f"Quarantined records per rule in {ds.version_id}",
    )
    create_markdown_artifact(
        key="dataset-version",
        markdown=(
            f"# Dataset {ds.version_id}\n\n"
            f"- input **{ds.input}** = accepted **{ds.accepted}** + quarantined "
            f"**{ds.quarantined}**\n- languages: {ds.langs}\n- {ds.validation}\n"
            f"- published: `{ds.path}` ({'new' if ds.created else 'already existed'})\n"
        ),
        description="Accounting of the ingest run",
    )


@flow(name="lmops-ingest", log_prints=False)
def ingest_flow(config: RunConfig, sources: list[str] | None = None) -> DatasetVersion:
    """Resolve sources, ingest and validate them, publish the version and its accounting."""
    resolved = resolve_sources(list(sources or config.data.sources))
    ds = ingest_and_validate(resolved, config)
    publish_ingest_artifacts(ds)
    return ds


__all__ = ["DatasetVersion", "ingest_flow"]
