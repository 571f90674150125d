"""``lmops data list|show|diff``: the published dataset versions of the home."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pipelines.cli.common import console

data_app = typer.Typer(help="Inspect published dataset versions.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``lmops data`` to the main app."""
    app.add_typer(data_app, name="data")


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
