"""Trust commands of the ``lmops`` CLI: verify a version or alias, audit the registry.

Exit codes: 0 everything verifies; 4 a check failed (the line says which); 2 usage.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from pipelines.cli.common import connect_tracking, console


def register(app: typer.Typer) -> None:
    """Add the trust commands to the main app."""
    app.command()(verify)
    app.command()(audit)


def verify(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME/VERSION.")],
) -> None:
    """Check a version's signed evidence, its files and tags (and, for an alias, its move)."""
    connect_tracking()
    from model_registry.attestation import Unverified
    from model_registry.verify import verify as do_verify

    report = do_verify(ref)
    head = f"{report.model} v{report.version}" if report.version else report.model
    console.print(head + (f" @{report.alias}" if report.alias else ""))
    for c in report.checks:
        mark = "[green]ok  [/]" if c.ok else "[red]FAIL[/]"
        console.print(f"  {mark} {c.name}: {c.detail}", highlight=False, soft_wrap=True)
    if not report.ok:
        raise Unverified(f"{ref} does not verify: {report.why}")
    console.print(f"{ref} verifies")


def audit(
    revert: Annotated[
        bool,
        typer.Option(help="Move an unverified alias back to its last verified holder."),
    ] = False,
    watch: Annotated[
        bool, typer.Option(help="Keep auditing: poll, and listen for MLflow's webhooks.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls with --watch.")] = 5.0,
    webhook_host: Annotated[
        str, typer.Option(help="Address MLflow delivers webhooks to (with --watch).")
    ] = "127.0.0.1",
    webhook_port: Annotated[
        int, typer.Option(help="Port for MLflow's webhooks; 0 picks one; -1 polls only.")
    ] = 0,
    files: Annotated[
        bool, typer.Option(help="Also download and re-hash every holder's files.")
    ] = False,
) -> None:
    """Check every alias of every model; with --revert, undo the moves that do not verify."""
    connect_tracking()
    from model_registry.attestation import Unverified
    from model_registry.audit import audit_all

    if not watch:
        found = audit_all(revert, files)
        for f in found:
            console.print(f.line(), highlight=False, soft_wrap=True)
        bad = [f for f in found if not f.verified]
        if bad and not revert:
            raise Unverified(
                f"{len(bad)} alias(es) do not verify; `lmops audit --revert` undoes them"
            )
        console.print(f"{len(found)} alias(es) checked, {len(bad)} unverified")
        return
    _watch(revert, interval, webhook_host, webhook_port, files)


def _watch(revert: bool, interval: float, host: str, port: int, files: bool) -> None:
    from pipelines.registry_audit import WebhookReceiver, subscribe
    from pipelines.registry_audit import watch as do_watch

    receiver = None
    if port >= 0:
        secret = os.environ.get("LMOPS_WEBHOOK_SECRET") or _secret()
        receiver = WebhookReceiver(secret, host, port)
        why = subscribe(receiver.url, secret)
        if why:
            console.print(f"webhooks off ({why}); polling every {interval:g} s")
            receiver.close()
            receiver = None
        else:
            console.print(f"listening for MLflow webhooks on {receiver.url}")
    console.print(f"auditing every {interval:g} s" + (", reverting" if revert else ""))
    try:
        do_watch(
            revert,
            interval,
            receiver,
            on_finding=lambda f: console.print(f.line(), highlight=False, soft_wrap=True),
            files=files,
        )
    except KeyboardInterrupt:
        pass
    finally:
        if receiver is not None:
            receiver.close()


def _secret() -> str:
    """The webhook secret: a 0600 file under the home's keys/, made on first use."""
    import secrets

    from model_registry.keys import keys_dir

    path = keys_dir() / "webhook.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()
