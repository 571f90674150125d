"""``lmops run`` and ``lmops train``: the whole pipeline, or its model half on a
published dataset version, and the summary table both print."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from lmops.errors import LmopsError
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
    """Add ``lmops run`` and ``lmops train`` to the main app."""
    app.command()(run)
    app.command()(train)


def run(
    config: ConfigOpt = "cpu",
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            "-s",
            help="Corpus file, folder or fsspec URL (repeatable). "
            "Default: the built-in sample corpus.",
        ),
    ] = None,
    set_: SetOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Run the end-to-end pipeline: ingest → validate → tokenizer → train → evaluate → @staging."""
    cfg = load_config(config, set_, profile)
    sources = list(source or cfg.data.sources)
    if sources:
        check_sources(sources)
    h = prepare_home()
    console.print(f"[bold]lmops run[/] config=[cyan]{cfg.name}[/] home={h.root}")
    api = prefect_api()
    from pipelines.end_to_end import pipeline_flow

    with flows(api):
        result = pipeline_flow(cfg, sources or None)
    _report(result)


def train(
    config: ConfigOpt = "cpu",
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Dataset version: id, prefix or 'latest'.")
    ] = "latest",
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="MLflow run id of a stopped training run: continue it from its latest "
            "checkpoint, with the same --config, --set, --from and --objective.",
        ),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Registered model to start from (models:/NAME@ALIAS or models:/NAME/N): "
            "continued pre-training or fine-tuning. Same as --set train.init_from=URI.",
        ),
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(
            "--objective",
            help="clm (causal LM), mlm (masked LM encoder) or sft (prompt/response "
            "fine-tuning). Same as --set train.objective=NAME.",
        ),
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Train → evaluate → @staging on a published dataset version, without re-reading sources."""
    from pipelines.run_config import load_run_config

    overrides = list(set_ or [])
    if objective:
        overrides.append(f'train.objective="{objective}"')
    if from_:
        overrides.append(f'train.init_from="{from_}"')
    cfg = load_run_config(config, overrides)
    h = prepare_home()
    api = prefect_api()
    from pipelines.end_to_end import model_flow
    from pipelines.ingest import published
    from pipelines.train import resumable

    if cfg.train.init_from:  # a missing parent fails now, not after tokenizing
        import mlflow

        from lmops.evaluation.loading import resolve_version
        from lmops.training.objectives import check_parent_kind

        mlflow.set_tracking_uri(h.tracking_uri)
        parent = resolve_version(cfg.train.init_from)
        kind = parent["tags"].get("lmops.model_kind", "causal")
        check_parent_kind(cfg.train.init_from, kind, cfg.train.objective)
    ds = published(dataset)
    if resume:
        trained_on = resumable(resume, cfg)
        if dataset != "latest" and ds.version_id != trained_on:
            raise LmopsError(f"run '{resume}' trains on {trained_on}, not {ds.version_id}")
        ds = published(trained_on)
    what = f"resuming run {resume}" if resume else "training"
    console.print(
        f"[bold]lmops train[/] config=[cyan]{cfg.name}[/] dataset={ds.version_id} "
        f"({what}) home={h.root}"
    )
    with flows(api):
        result = model_flow(cfg, ds, None, resume)
    _report(result)


def _report(result) -> None:
    """Print the pipeline's summary; a refused gate exits non-zero (exit code 4)."""
    _print_summary(result)
    pr = result.promotion
    if pr.gated and not pr.promoted:
        from model_registry.promotion import GateRefused

        raise GateRefused(
            f"the @{pr.alias} gate refused {pr.model_name} v{pr.version} (reasons above); "
            "it is registered but not promoted"
        )


def _print_summary(r) -> None:
    ds, tr, ev, pr = r.dataset, r.trained, r.evaluation, r.promotion
    if r.cached:
        console.print(
            f"[bold]cache hit[/]: dataset {ds.version_id} (input {ds.input} = accepted "
            f"{ds.accepted} + quarantined {ds.quarantined}), config and code are "
            f"unchanged since {pr.model_name} v{pr.version}; ingest and training "
            "skipped."
        )
        console.print(f"@{pr.alias}: {'held by' if pr.promoted else 'not given to'} v{pr.version}")
        return
    t = Table(title="lmops pipeline", show_lines=False)
    for col in ("stage", "result", "seconds"):
        t.add_column(col)
    s = r.stage_seconds
    t.add_row(
        "ingest + validate" if "ingest + validate" in s else "dataset (published)",
        f"{ds.version_id}: input {ds.input} = accepted {ds.accepted} "
        f"+ quarantined {ds.quarantined}; {ds.validation}",
        f"{s['ingest + validate']:.1f}" if "ingest + validate" in s else "-",
    )
    t.add_row(
        "tokenize + train",
        f"{tr.tokenizer_id}, {tr.train_tokens:,} train tokens, "
        f"{tr.num_workers} Ray worker(s){' on GPU' if tr.used_gpu else ''}, "
        f"final train loss {tr.final_metrics.get('train/loss', float('nan')):.3f}",
        f"{s['tokenize + train']:.1f}",
    )
    m = ev.metrics
    safety = f"; safety score {m['safety/score']:.2f}" if "safety/score" in m else ""
    if "eval/masked_accuracy" in m:
        quality = (
            f"masked-token accuracy {m['eval/masked_accuracy']:.3f} over "
            f"{m.get('eval/masked_tokens', 0):.0f} masked tokens"
        )
    else:
        quality = (
            f"held-out perplexity {m.get('eval/perplexity', float('nan')):.2f} "
            f"({m.get('eval/bits_per_byte', float('nan')):.3f} bits/byte) over "
            f"{m.get('eval/tokens_scored', 0):.0f} tokens"
        )
    t.add_row(
        "evaluate",
        f"{quality}{safety}; {len(ev.scorers)} scorers",
        f"{s['evaluate']:.1f}",
    )
    verdict = (
        "registered, not gated for"
        if not pr.gated
        else "promoted to"
        if pr.promoted
        else "[red]NOT promoted[/] to"
    )
    t.add_row(
        "register + gate",
        f"{pr.model_name} v{pr.version} {verdict} @{pr.alias}",
        f"{s['register + gate']:.1f}",
    )
    console.print(t)
    if ds.reasons:
        console.print(
            "quarantine reasons: " + ", ".join(f"{k}={v}" for k, v in sorted(ds.reasons.items()))
        )
    for sample in ev.samples()[:3]:
        console.print(f"  [dim]{sample['prompt']!r}[/] → {sample['completion']!r}")
    if ev.comparison is not None:
        inc = ev.comparison["incumbent"]
        console.print(
            f"compared with v{inc['version']} (@{inc['alias']}, re-scored on "
            f"{ev.comparison['eval_set']}{', cached' if inc.get('cached') else ''})"
        )
    if ev.report_path:
        console.print(f"eval report: {ev.report_path}")
    console.print("\nGate: " + "; ".join(pr.reasons))
    where = f"@{pr.alias}" if pr.promoted else f"/{pr.version}"
    console.print(f"\nLoad it:  mlflow.transformers.load_model('models:/{pr.model_name}{where}')")
    console.print(
        "Look at it:  [bold]lmops ui[/]  then open http://127.0.0.1:5000 "
        f"(experiment '{r.experiment}', model '{pr.model_name}')"
    )
