"""What the ``lmops`` command modules share: consoles, options, and the setup a command
runs before its work (config, home, quiet logs, Prefect's API, the tracking store).

It imports no command module, so every command module can import it. Heavy imports
happen inside the helpers, so that ``lmops --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

REPO = Path(__file__).resolve().parents[2]
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
        help="Data standard profile: web, docs, short, or a TOML file extending one; it "
        "replaces the config's data.profile (cpu and tiny: profiles/sample-corpus.toml). "
        "Same as --set data.profile=NAME. See `lmops standard show`.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def load_config(config: str, sets: list[str] | None, profile: str | None = None):
    """The run config with --set and --profile applied; the standard is resolved up front
    so that a bad profile or threshold fails here, in one line, before anything starts."""
    from lmops.data.standard import load_standard
    from pipelines.run_config import load_run_config

    extra = [f"data.profile={profile}"] if profile else []
    cfg = load_run_config(config, [*(sets or []), *extra])
    load_standard(cfg.data)
    return cfg


def quiet_console_logs() -> None:
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


def prepare_home():
    """The home, made ready for a flow: environment set, logs quiet, progress on the console."""
    from lmops.home import prepare_environment
    from lmops.progress import RichReporter, install

    h = prepare_environment()
    quiet_console_logs()
    install(RichReporter(console))
    return h


def prefect_api():
    """Start or reuse the home's embedded Prefect API (:mod:`lmops.prefect_api`).

    Call before a flow module imports Prefect, then call flows inside ``flows(api)``.
    None when a real server is configured, or Prefect decides alone.
    """
    from lmops.prefect_api import start_prefect_api

    return start_prefect_api()


def flows(api, meanwhile=()):
    """Where flows run: on the embedded API once it answers, else as Prefect decides."""
    return api.flows(meanwhile) if api else contextlib.nullcontext()


def check_sources(sources: list[str]) -> None:
    """Fail now, in one line, on a missing source or a named file of unknown format."""
    from lmops.data.sources import expand_sources

    expand_sources(sources)


def connect_tracking():
    """Point MLflow at the home's store; on a server, check the login before anything."""
    import mlflow

    from lmops.home import prepare_environment
    from lmops.tracking import configure_mlflow
    from model_registry.identity import current_identity

    h = prepare_environment()
    mlflow.set_tracking_uri(h.tracking_uri)
    current_identity()  # a wrong password is one clear line, not a 401 traceback
    configure_mlflow(h, "lmops")
    return h
