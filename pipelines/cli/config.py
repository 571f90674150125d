"""``lmops config list|show``: the named run configs and how one resolves."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli.common import SetOpt, console

config_app = typer.Typer(help="Inspect run configs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``lmops config`` to the main app."""
    app.add_typer(config_app, name="config")


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
