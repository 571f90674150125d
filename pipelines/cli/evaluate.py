"""``lmops evaluate``: the evaluation, safety and ethics suite on a registered version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lmops.errors import LmopsError
from pipelines.cli.common import SetOpt, console, flows, prefect_api, prepare_home


def register(app: typer.Typer) -> None:
    """Add ``lmops evaluate`` to the main app."""
    app.command()(evaluate)


def evaluate(
    model_uri: Annotated[
        str,
        typer.Argument(help="models:/NAME/VERSION or models:/NAME@ALIAS."),
    ],
    suite: Annotated[
        str | None,
        typer.Option(
            help="A named suite (standard, quality, safety, mlm) instead of the "
            "config's eval.scorers."
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Dataset version (id, prefix or 'latest') whose held-out set is "
            "used. Default: the version's own training dataset."
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            help="Run config for the eval settings. Default: the "
            "version's own config (tag lmops.config), else cpu.",
        ),
    ] = None,
    set_: SetOpt = None,
    attach: Annotated[
        bool,
        typer.Option(
            help="Sign the results as the version's new evidence (its lineage "
            "carries over; approvals of the old evidence no longer count) and write "
            "them as its eval.*, safety.* and bias.* tags."
        ),
    ] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Score again even if this evaluation exists.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run the evaluation, safety and ethics suite on a registered version."""
    from pipelines.run_config import load_run_config

    if not model_uri.startswith("models:/"):
        raise LmopsError(
            "lmops evaluate records its results on a registered version: pass "
            "models:/NAME/VERSION or models:/NAME@ALIAS"
        )
    h = prepare_home()
    from lmops.data.catalog import find_version
    from lmops.evaluation.loading import resolve_version
    from lmops.evaluation.scorer import suite_names
    from model_registry import tags as T

    overrides = list(set_ or [])
    if suite is not None:
        overrides.append(f"eval.scorers={suite_names(suite)!r}".replace("'", '"'))
    import mlflow

    mlflow.set_tracking_uri(h.tracking_uri)
    tags = resolve_version(model_uri)["tags"]
    cfg_name = config or tags.get(T.CONFIG) or "cpu"
    from pipelines.run_config import named_configs

    if config is None and cfg_name not in named_configs():
        cfg_name = "cpu"
    cfg = load_run_config(cfg_name, overrides)
    ds_ref = dataset or tags.get(T.DATASET_VERSION)
    if ds_ref is None:
        raise LmopsError(
            f"{model_uri} carries no {T.DATASET_VERSION} tag; pass --dataset with a published "
            "version (see `lmops data list`)"
        )
    ds_path = (
        str(Path(ds_ref))
        if Path(ds_ref).is_dir()
        else str(h.datasets / find_version(h.datasets, ds_ref)["version_id"])
    )
    api = prefect_api()
    from pipelines.evaluate import evaluate_version_flow

    with flows(api):
        res = evaluate_version_flow(model_uri, cfg, ds_path, use_cache=not no_cache)
    if attach:
        from model_registry.signed_evidence import resign

        resign(res.name, res.version, res.metrics, res.eval_set_id)
    if json_out:
        console.print_json(res.model_dump_json())
        return
    _print_evaluation(res, attach)


def _print_evaluation(res, attached: bool) -> None:
    t = Table(title=f"{res.name} v{res.version} on {res.eval_set_id} ({res.dataset_version})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in sorted(res.metrics.items()):
        t.add_row(k, f"{v:.4g}")
    console.print(t)
    for name, why in res.skipped.items():
        console.print(f"skipped {name}: {why}")
    state = "cached evaluation reused" if res.cached else "evaluated"
    console.print(f"{state}: MLflow run {res.run_id}")
    if attached:
        console.print(f"new evidence signed and written to {res.name} v{res.version}")
