"""The ``lmops`` command line.

It lives in ``pipelines`` because it sits on top of everything: it runs the
flows, which use ``model_registry`` and ``lmops``. Errors the user can fix are
printed as one line with what to do next; exit codes are non-zero, never a traceback.
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lmops.errors import LmopsError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="lmops: corpus → validated data → Ray-trained LM → evaluated, gated MLflow registry.",
    epilog="Exit codes: 0 done; 2 usage or a request that cannot be served; 3 a dataset "
    "failed its standard; 4 a gate refused a promotion; 130 interrupted.",
)


def _version(value: bool) -> None:
    if value:
        from lmops import __version__

        print(f"lmops {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show library warnings and logs.")
    ] = False,
) -> None:
    """Options that apply to every command."""
    if verbose:
        os.environ["LMOPS_VERBOSE"] = "1"


config_app = typer.Typer(help="Inspect run configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
data_app = typer.Typer(help="Inspect published dataset versions.", no_args_is_help=True)
app.add_typer(data_app, name="data")
services_app = typer.Typer(
    help="Local real services: PostgreSQL, MLflow, Prefect, Ray.", no_args_is_help=True
)
app.add_typer(services_app, name="services")
REPO = Path(__file__).resolve().parent.parent
console = Console(stderr=False)
err = Console(stderr=True)

ConfigOpt = Annotated[
    str, typer.Option("--config", "-c", help="A named config (tiny, cpu, h200) or a .toml path.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a field: --set train.max_steps=50 (repeatable)."),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="Data standard profile: web (default), docs, short, or a TOML file extending "
        "one. Same as --set data.profile=NAME. See `lmops standard show`.",
    ),
]


def _load(config: str, sets: list[str] | None, profile: str | None = None):
    """The run config with --set and --profile applied; the standard is resolved up front
    so that a bad profile or threshold fails here, in one line, before anything starts."""
    from lmops.data.standard import load_standard
    from pipelines.run_config import load_run_config

    extra = [f"data.profile={profile}"] if profile else []
    cfg = load_run_config(config, [*(sets or []), *extra])
    load_standard(cfg.data)
    return cfg


def _quiet_console_logs() -> None:
    """Keep third-party console logging out of the user's way; errors are ours to print.

    ``lmops --verbose`` keeps them: warnings are hidden by default, never lost.
    """
    if os.environ.get("LMOPS_VERBOSE"):
        return
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", "CRITICAL")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # transformers reads both variables when it is imported; importing it here only to
    # set them costs ~0.7 s on commands that never load a model (ingest).
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


def _setup():
    from lmops.home import prepare_environment
    from lmops.progress import RichReporter, install

    h = prepare_environment()
    _quiet_console_logs()
    install(RichReporter(console))
    return h


def _prefect_api():
    """Start or reuse the home's embedded Prefect API (:mod:`lmops.prefect_api`).

    Call before a flow module imports Prefect, then call flows inside ``_flows(api)``.
    None when a real server is configured, or Prefect decides alone.
    """
    from lmops.prefect_api import start_prefect_api

    return start_prefect_api()


def _flows(api, meanwhile=()):
    """Where flows run: on the embedded API once it answers, else as Prefect decides."""
    return api.flows(meanwhile) if api else contextlib.nullcontext()


def _check_sources(sources: list[str]) -> None:
    from lmops.data.readers import expand_sources

    expand_sources(sources)


@app.command()
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
    cfg = _load(config, set_, profile)
    sources = list(source or cfg.data.sources)
    if sources:
        _check_sources(sources)
    h = _setup()
    console.print(f"[bold]lmops run[/] config=[cyan]{cfg.name}[/] home={h.root}")
    api = _prefect_api()
    from pipelines.end_to_end import pipeline_flow

    with _flows(api):
        result = pipeline_flow(cfg, sources or None)
    _report(result)


@app.command()
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
    h = _setup()
    api = _prefect_api()
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
    with _flows(api):
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


@app.command()
def ingest(
    sources: Annotated[list[str], typer.Argument(help="Files, folders or fsspec URLs.")],
    config: ConfigOpt = "cpu",
    set_: SetOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Run the ingest flow alone: validate SOURCES and publish a dataset version."""
    h = _setup()
    from lmops import side_process

    # The side process (where GX validates and matplotlib plots) starts first: its
    # imports are the longest path of a small ingest. The API and a new home's MLflow
    # store start once the config and sources are known good, while the flow imports.
    first_uses = _ingest_first_uses()
    side_process.start(side_process.INGEST_MODULES, meanwhile=first_uses)
    try:
        cfg = _load(config, set_, profile)
        _check_sources(sources)
    except BaseException:
        side_process.abandon()  # not needed now: do not wait for its imports
        raise
    from lmops.tracking import create_store_in_background

    api = _prefect_api()
    create_store_in_background(h)
    from pipelines.ingest import ingest_flow

    try:
        with _flows(api, meanwhile=first_uses):
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
    console.print(
        f"input {ds.input} = accepted {ds.accepted} + quarantined {ds.quarantined} [{mark}]"
    )
    console.print(ds.validation)
    _print_reasons(ds.reasons)
    console.print(f"path: {ds.path}")


@app.command()
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
    h = _setup()
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
    api = _prefect_api()
    from pipelines.evaluate import evaluate_version_flow

    with _flows(api):
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


def _print_reasons(reasons: dict[str, int]) -> None:
    if not reasons:
        return
    t = Table("quarantine rule", "records")
    for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]):
        t.add_row(k, str(v))
    console.print(t)


@data_app.command("list")
def data_list() -> None:
    """Every published dataset version, oldest first."""
    from lmops.data.catalog import list_versions
    from lmops.home import home

    t = Table("version", "created", "input", "accepted", "quarantined", "languages", "standard")
    for m in list_versions(home().datasets):
        c = m["counts"]
        t.add_row(
            m["version_id"],
            m.get("created", "?"),
            str(c["input"]),
            str(c["accepted"]),
            str(c["quarantined"]),
            ", ".join(f"{k}={v}" for k, v in c["langs"].items()),
            m["standard_version"],
        )
    console.print(t)


@data_app.command("show")
def data_show(
    version: Annotated[str, typer.Argument(help="Version id, prefix or 'latest'.")] = "latest",
) -> None:
    """One version's manifest: sources, counts per stage and reason, validation."""
    from lmops.data.catalog import find_version
    from lmops.home import home

    console.print_json(data=find_version(home().datasets, version))


@data_app.command("diff")
def data_diff(
    a: Annotated[str, typer.Argument(help="Older version.")],
    b: Annotated[str, typer.Argument(help="Newer version.")],
) -> None:
    """What changed between two versions: counts, reasons, languages, sources."""
    from lmops.data.catalog import diff_versions, find_version
    from lmops.home import home

    ma, mb = find_version(home().datasets, a), find_version(home().datasets, b)
    d = diff_versions(ma, mb)
    t = Table("", ma["version_id"], mb["version_id"])
    for k, (x, y) in {
        **d["counts"],
        **{f"lang {k}": v for k, v in d["langs"].items()},
        **{f"reason {k}": v for k, v in d["reasons"].items()},
    }.items():
        t.add_row(k, str(x), str(y))
    console.print(t)
    for side in ("a", "b"):
        for p in d[f"sources_only_in_{side}"]:
            console.print(f"source only in {side}: {p}")


def _services(action: str) -> None:
    script = REPO / "infra" / "local" / "services.sh"
    if not script.exists():
        raise LmopsError(f"{script} is missing: `lmops services` needs a source checkout")
    from lmops.home import home

    env = {
        **os.environ,
        "LMOPS_HOME": str(home().root),
        "LMOPS_VENV_BIN": str(Path(sys.executable).parent),
    }
    code = subprocess.run(["bash", str(script), action], env=env).returncode
    if code:
        raise LmopsError(f"`services {action}` failed (exit {code}); logs are in {home().logs}")


@services_app.command("up")
def services_up() -> None:
    """Start PostgreSQL, the MLflow server, a Ray head + worker, Prefect server + worker."""
    _services("up")


@services_app.command("down")
def services_down() -> None:
    """Stop every local service cleanly, and the home's embedded Prefect API."""
    from lmops import prefect_api
    from lmops.home import home

    if prefect_api.stop(home()):
        console.print("prefect (embedded API): stopped")
    _services("down")


@services_app.command("status")
def services_status() -> None:
    """Health-check each service, and show the home's embedded Prefect API."""
    from lmops import prefect_api
    from lmops.home import home

    console.print(prefect_api.status(home()), highlight=False, soft_wrap=True)
    _services("status")


@services_app.command("env")
def services_env() -> None:
    """Print the variables that point lmops at the services (source them in a shell)."""
    _services("env")


@app.command()
def schedule() -> None:
    """Register prefect.yaml's deployments (nightly ingest, weekly train) on the Prefect server."""
    if not os.environ.get("PREFECT_API_URL"):
        raise LmopsError(
            "schedules need a Prefect server: run `lmops services up`, then "
            "`set -a; source .lmops/services.env; set +a` and retry"
        )
    env = {**os.environ, "LMOPS_REPO": str(REPO)}
    prefect = str(Path(sys.executable).with_name("prefect"))
    code = subprocess.run([prefect, "--no-prompt", "deploy", "--all"], cwd=REPO, env=env).returncode
    if code:
        raise LmopsError(f"`prefect deploy --all` failed (exit {code}); see its output above")
    import yaml

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    for d in spec["deployments"]:
        cron = ", ".join(x["cron"] for x in d.get("schedules") or []) or "on demand"
        console.print(f"deployment registered: {d['name']} ({cron})")


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port for the MLflow UI.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="Server worker processes.")] = 1,
) -> None:
    """Start the MLflow UI on this home's tracking store (Ctrl-C to stop).

    Both artifact options name the home's folder: MLflow's defaults (``./mlruns`` for new
    experiments, ``./mlartifacts`` for proxied uploads) are relative to the working directory.
    One worker and no MLflow job runners (GenAI jobs lmops does not use; set
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true to have them) suit one local reviewer: measured
    on 2 cores, that starts in about 11 s with 2 processes, MLflow's defaults in 53 s with 15.
    """
    from lmops.home import prepare_environment

    h = prepare_environment()
    if not h.embedded_mlflow:
        console.print(f"MLFLOW_TRACKING_URI is set: open {h.tracking_uri} in a browser instead.")
        return
    from lmops.tracking import keep_artifacts_in_home

    keep_artifacts_in_home(h)  # experiments created elsewhere with MLflow's default
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        h.tracking_uri,
        "--default-artifact-root",
        h.artifacts.as_uri(),
        "--artifacts-destination",
        h.artifacts.as_uri(),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    console.print(f"MLflow UI on http://{host}:{port}  (store {h.tracking_uri})")
    os.execv(sys.executable, cmd)


@config_app.command("show")
def config_show(
    name: Annotated[str, typer.Argument(help="Config name or path.")] = "cpu", set_: SetOpt = None
) -> None:
    """Print a resolved config as TOML-like JSON, with every field."""
    from pipelines.run_config import load_run_config

    console.print_json(load_run_config(name, set_ or []).model_dump_json())


@config_app.command("list")
def config_list() -> None:
    """List the named run configs."""
    from pipelines.run_config import named_configs

    for n in named_configs():
        console.print(n)


def main() -> None:
    from pipelines.cli_registry import register
    from pipelines.cli_serving import register as register_serving
    from pipelines.cli_standard import register as register_standard
    from pipelines.cli_trust import register as register_trust

    register(app)
    register_trust(app)
    register_serving(app)
    register_standard(app)
    # With Python's default threshold (a young collection every 700 net allocations) the
    # collector took 2.0 s of a 50-record ingest on 2 cores, 9 full passes over every
    # imported library's objects among them; at 10,000, 0.4 s and no full pass. Reference
    # cycles are still freed, a little later.
    gc.set_threshold(10_000)
    try:
        app()
    except LmopsError as e:
        err.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print(
            "interrupted; published data is unchanged (a staging folder is swept once its "
            "lease expires, 10 minutes after the run stopped)"
        )
        sys.exit(130)
    finally:
        # The interpreter's teardown would collect every object of every imported
        # library once more: 1.7 s of each command measured on 2 cores. Frozen objects
        # that only reference cycles keep alive are left to the OS; the rest are still
        # freed at exit, and atexit handlers still run.
        gc.freeze()


if __name__ == "__main__":
    main()
