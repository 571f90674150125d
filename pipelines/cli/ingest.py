"""``lmops ingest``: validate sources and publish a dataset version, nothing more."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lmops.home import as_path
from pipelines.cli.common import (
    ConfigOpt,
    ProfileOpt,
    SetOpt,
    check_sources,
    console,
    flows,
    load_config,
    prefect_api,
    prepare_home,
)


def register(app: typer.Typer) -> None:
    """Add ``lmops ingest`` to the main app."""
    app.command()(ingest)


def _ingest_first_uses():
    """What the ingest loads on first use in this process, in the order it uses it (over
    a second of imports on 2 cores). The CLI does it while it waits for Prefect's API, or else for
    the side process's validation. A load that fails is left to the stage that needs it,
    which reports the error in context."""
    import importlib

    def toxicity_model() -> None:
        from lmops.text.toxicity import toxicity_scores

        toxicity_scores(["warm-up"], ["en"])  # loads the English model

    def imports(*modules: str):
        return lambda: [importlib.import_module(m) for m in modules]

    def quietly(job):
        def run() -> None:
            with contextlib.suppress(Exception):
                job()

        return run

    for job in (
        imports("lmops.data.executor"),  # signals: language id, quality rules, pyarrow
        toxicity_model,
        imports("mlflow", "mlflow.store.tracking.sqlalchemy_store"),  # the SQLite store
    ):
        yield quietly(job)


def ingest(
    sources: Annotated[list[str], typer.Argument(help="Files, folders or fsspec URLs.")],
    config: ConfigOpt = "cpu",
    set_: SetOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Run the ingest flow alone: validate SOURCES and publish a dataset version."""
    h = prepare_home()
    from lmops import side_process

    # The side process (where GX validates and matplotlib plots) starts first: its
    # imports are the longest path of a small ingest. The API and a new home's MLflow
    # store start once the config and sources are known good, while the flow imports.
    first_uses = _ingest_first_uses()
    side_process.start(side_process.INGEST_MODULES, meanwhile=first_uses)
    try:
        cfg = load_config(config, set_, profile)
        check_sources(sources)
    except BaseException:
        side_process.abandon()  # not needed now: do not wait for its imports
        raise
    from lmops.tracking import create_store_in_background

    api = prefect_api()
    create_store_in_background(h)
    from pipelines.ingest import ingest_flow

    try:
        with flows(api, meanwhile=first_uses):
            ds = ingest_flow(cfg, sources)
    finally:
        side_process.stop()
    mark = "OK" if ds.input == ds.accepted + ds.quarantined else "MISMATCH"
    state = "published" if ds.created else "already published (cache hit, nothing re-run)"
    console.print(f"dataset version [bold]{ds.version_id}[/] {state}")
    if ds.standard:
        console.print(
            f"standard {ds.standard['name']} {ds.standard['version']}, "
            f"profile {ds.standard['profile']} (digest {ds.standard['digest']})",
            highlight=False,
        )
        # What the run config changed of the profile's rules, one line each.
        for line in ds.standard.get("overrides", []):
            console.print(f"  override: {line}", highlight=False, soft_wrap=True)
    console.print(
        f"input {ds.input} = accepted {ds.accepted} + quarantined {ds.quarantined} [{mark}]"
    )
    console.print(ds.validation)
    _print_reasons(ds.reasons)
    if ds.created:
        _print_stages(as_path(ds.path))
    console.print(f"path: {ds.path}")


def _print_stages(path: Path) -> None:
    """One line per stage: seconds, rows/s and MB/s, and where it ran."""
    from lmops.data.catalog import load_manifest
    from lmops.data.ingest import report_from_manifest

    m = load_manifest(path)
    rep = report_from_manifest(path, True, None, m.get("stage_seconds", {}))
    ex = rep.executor
    where = f"Ray, {ex['nodes']} node(s), {ex['cpus']} CPUs" if ex.get("kind") == "ray" else "local"
    t = Table(f"stage ({where})", "seconds", "rows/s", "MB/s")
    for stage, secs, rows, nbytes in rep.stage_rates():
        t.add_row(stage, f"{secs:.2f}", f"{rows:,.0f}" if rows else "-", f"{nbytes / 1e6:.1f}")
    console.print(t)


def _print_reasons(reasons: dict[str, int]) -> None:
    if not reasons:
        return
    t = Table("quarantine rule", "records")
    for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]):
        t.add_row(k, str(v))
    console.print(t)
