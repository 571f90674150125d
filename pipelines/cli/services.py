"""Commands for the local services: ``lmops services up|down|status|env``, ``lmops ui``
(the MLflow UI on the home's store) and ``lmops schedule`` (Prefect deployments)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from lmops.errors import LmopsError
from pipelines.cli.common import REPO, console

services_app = typer.Typer(
    help="Local real services: PostgreSQL, MLflow, Prefect, Ray.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``lmops schedule``, ``lmops ui`` and ``lmops services`` to the main app."""
    app.command()(schedule)
    app.command()(ui)
    app.add_typer(services_app, name="services")


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
