"""Registry commands of the ``lmops`` CLI: promote, approve, reject, rollback, history,
models, lineage. Every write goes through ``model_registry.promotion``.

Exit codes (all commands): 0 done; 2 usage or a request that cannot be served
(unknown version, wrong alias, bad config); 3 a dataset failed its standard;
4 a gate refused the move; 130 interrupted.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from lmops.errors import LmopsError
from pipelines.cli.common import JsonOpt, connect_tracking, console

models_app = typer.Typer(help="Registered models and their versions.", no_args_is_help=True)
AliasOpt = Annotated[str, typer.Option("--to", help="Target alias: staging or production.")]


def register(app: typer.Typer) -> None:
    """Add the registry commands to the main app."""
    app.add_typer(models_app, name="models")
    app.command()(promote)
    app.command()(approve)
    app.command()(reject)
    app.command()(rollback)
    app.command()(history)
    app.command()(lineage)


def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number.")],
    to: AliasOpt = "staging",
) -> None:
    """Gate VERSION with the alias's policy; move the alias only if every row passes."""
    connect_tracking()
    from model_registry.promotion import GateRefused
    from model_registry.promotion import promote as do_promote
    from pipelines.evaluate import rescorer_for_version

    out = do_promote(name, version, to, rescore=rescorer_for_version(name, version))
    d = out.decision
    console.print(f"policy {d.policy} v{d.policy_version} (digest {d.policy_digest})")
    for r in d.reasons:
        console.print(("  [green]" if r.startswith("ok") else "  [red]") + r + "[/]")
    if not d.passed:
        raise GateRefused(f"@{to} gate refused {name} v{version}; see the reasons above")
    if out.moved:
        from pipelines.events import emit_alias_moved

        ev = out.event
        emit_alias_moved(name, to, ev.from_version, version, ev.actor, f"{ev.policy} gate passed")
    console.print(f"{name} v{version} now holds @{to}" + ("" if out.moved else " (already)"))


def approve(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number.")],
    comment: Annotated[str, typer.Option(help="What you checked.")] = "",
) -> None:
    """Record your approval of VERSION for @production, as the identity you act as."""
    connect_tracking()
    from model_registry.promotion import approve as do_approve

    ev = do_approve(name, version, comment)
    console.print(f"approval of {name} v{version} recorded for {ev.actor} at {ev.when}")


def reject(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number.")],
    comment: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Record your rejection of VERSION (it withdraws an earlier approval of yours)."""
    connect_tracking()
    from model_registry.promotion import approve as do_approve

    ev = do_approve(name, version, comment, reject=True)
    console.print(f"rejection of {name} v{version} recorded for {ev.actor} at {ev.when}")


def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias: Annotated[str, typer.Option(help="The alias to return to its previous holder.")] = (
        "production"
    ),
) -> None:
    """Return ALIAS to the version that held it before the current one."""
    connect_tracking()
    from model_registry.promotion import rollback as do_rollback

    ev = do_rollback(name, alias)
    from pipelines.events import emit_alias_moved

    emit_alias_moved(name, alias, ev.from_version, ev.to_version, ev.actor, ev.reasons[0])
    console.print(f"@{alias}: v{ev.from_version} -> v{ev.to_version} (recorded)")


def history(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    json_out: JsonOpt = False,
) -> None:
    """Who moved which version, when, from -> to, and why; whether each move's record verifies."""
    from lmops.home import prepare_environment

    # No connect_tracking(): importing mlflow alone takes over a second, and the history is
    # read without it (model_registry/history_read.py).
    prepare_environment()
    from model_registry.history import APPROVALS_EXPERIMENT
    from model_registry.history_read import events as read_events

    events = sorted(
        read_events(name) + read_events(name, experiment=APPROVALS_EXPERIMENT),
        key=lambda e: e.time,
    )
    from model_registry.promotion_records import MOVES, verify_record

    def verifies(e) -> bool | None:
        if e.event not in MOVES or not e.to_version or not e.passed:
            return None
        try:
            verify_record(e)
        except LmopsError:
            return False
        return True

    if json_out:
        rows = [{**e.as_dict(), "signature_verifies": verifies(e)} for e in events]
        print(json.dumps(rows, indent=2))
        return
    if not events:
        console.print(f"no registry events for {name}")
        return

    def signed(e) -> str:
        return {None: "", False: "[red]NO[/]", True: "[green]verified[/]"}[verifies(e)]

    t = Table(
        "when (UTC)", "who", "event", "version", "alias: from -> to", "policy", "evidence", "signed"
    )
    for e in events:
        verdict = {"gate": "passed" if e.passed else "REFUSED"}.get(e.event, "")
        move = f"{e.alias}: v{e.from_version or '-'} -> v{e.to_version or '-'}"
        t.add_row(
            e.when,
            e.actor + ("" if e.verified else " (unverified)"),
            f"{e.event} {verdict}".strip(),
            e.version,
            move if e.event in MOVES else e.alias,
            f"{e.policy} {e.policy_digest}".strip(),
            e.evidence_digest[:12],
            signed(e),
        )
    console.print(t)
    for e in events:
        failed = [r for r in e.reasons if r.startswith("FAIL")]
        if failed or e.comment:
            console.print(
                f"[dim]{e.when} v{e.version} {e.event}:[/] " + "; ".join(failed or [e.comment])
            )


@models_app.command("list")
def models_list(json_out: JsonOpt = False) -> None:
    """Every registered model with its aliases."""
    connect_tracking()
    from mlflow import MlflowClient

    rows = [
        {
            "name": m.name,
            "aliases": {a: str(v) for a, v in (m.aliases or {}).items()},
            "latest": max((int(v.version) for v in m.latest_versions or []), default=None),
        }
        for m in MlflowClient().search_registered_models()
        if not m.name.startswith("lmops-lock.")
    ]
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    t = Table("model", "aliases", "latest version")
    for r in rows:
        t.add_row(
            r["name"], ", ".join(f"@{a}=v{v}" for a, v in r["aliases"].items()), str(r["latest"])
        )
    console.print(t)


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Registered model name.")], json_out: JsonOpt = False
) -> None:
    """The versions of NAME: aliases, gate verdicts and headline evidence."""
    connect_tracking()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from model_registry import tags as T

    client = MlflowClient()
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        raise LmopsError(f"no registered model '{name}'; see `lmops models list`") from None
    aliases: dict[str, list[str]] = {}
    for alias, v in (model.aliases or {}).items():
        aliases.setdefault(str(v), []).append(alias)
    rows = []
    for mv in sorted(
        client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)
    ):
        t = mv.tags
        rows.append(
            {
                "version": str(mv.version),
                "aliases": sorted(aliases.get(str(mv.version), [])),
                "staging_gate": t.get(T.gate("staging"), ""),
                "production_gate": t.get(T.gate("production"), ""),
                "bits_per_byte": t.get("eval.bits_per_byte", ""),
                "safety_score": t.get("safety.score", ""),
                "dataset": t.get(T.DATASET_VERSION, ""),
                "run": mv.run_id,
            }
        )
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    table = Table(*rows[0].keys()) if rows else Table("version")
    for r in rows:
        table.add_row(*(", ".join(v) if isinstance(v, list) else str(v) for v in r.values()))
    console.print(table)


def lineage(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME/VERSION.")],
    json_out: JsonOpt = False,
) -> None:
    """The whole chain: version -> run -> dataset -> sources, standard, tokenizer, code."""
    h = connect_tracking()
    from model_registry.lineage import lineage as build

    chain = build(ref, h.datasets)
    if json_out:
        print(json.dumps(chain, indent=2))
        return
    for key, value in chain.items():
        if isinstance(value, list):
            console.print(f"[bold]{key}[/]:")
            for item in value:
                console.print(f"  - {item}")
        else:
            console.print(f"[bold]{key}[/]: {value}")
