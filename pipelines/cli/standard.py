"""``lmops standard``: print the resolved data standard a run would ingest with."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pipelines.cli.common import console

standard_app = typer.Typer(help="Inspect the data standard and its profiles.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``lmops standard`` to the main app."""
    app.add_typer(standard_app, name="standard")


@standard_app.command("show")
def show(
    profile: Annotated[
        str | None,
        typer.Option("--profile", help="A profile name, or a TOML file extending one."),
    ] = None,
    standard: Annotated[
        str, typer.Option("--standard", help="Standard name in lmops/data/standard, or a path.")
    ] = "v1",
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help="Apply this run config's data overrides too."),
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="As for lmops run.")] = None,
) -> None:
    """Print the resolved standard (every threshold, word list and setting) and its digest.

    The digest is part of every dataset version id made under this standard and profile.
    """
    from lmops.data.standard import load_standard, resolve

    if config or set_:
        from pipelines.run_config import load_run_config

        # As `lmops ingest` resolves it: --profile replaces the config's data.profile.
        extra = [f"data.profile={profile}"] if profile else []
        std = load_standard(load_run_config(config or "cpu", [*(set_ or []), *extra]).data)
    else:
        std = resolve(standard, profile)
    console.print(
        f"# data standard [bold]{std.name}[/] {std.version}, profile [bold]{std.profile}[/], "
        f"digest [bold]{std.digest}[/]",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"# profiles: {', '.join(std.profiles)}", highlight=False)
    for line in std.overrides:
        console.print(f"# override: {line}", highlight=False, soft_wrap=True)
    console.print_json(json.dumps(std.resolved, ensure_ascii=False))
