"""Serving commands of the ``lmops`` CLI: the API server (``serve``), API keys
(``keys add|list|revoke``) and token usage per key (``usage``). The work is done in
``lmops.serving``; imports happen inside each command so that ``lmops --help`` stays fast.

Exit codes: 0 done; 2 usage or a request that cannot be served (bad name, unknown key,
malformed key file, bad --since).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from pipelines.cli.common import JsonOpt, connect_tracking, console, err, quiet_console_logs

keys_app = typer.Typer(
    help="API keys of `lmops serve`, stored as sha256 hashes only.", no_args_is_help=True
)
FileOpt = Annotated[
    Path | None,
    typer.Option("--file", help="Key file. Default: <LMOPS_HOME>/serving/api_keys.toml."),
]
NameArg = Annotated[str, typer.Argument(help="Key name: letters, digits, '_', '.', '-'.")]


def register(app: typer.Typer) -> None:
    """Add the serving commands to the main app."""
    app.command()(serve)
    app.add_typer(keys_app, name="keys")
    app.command()(usage)


def serve(
    model: Annotated[
        str,
        typer.Option(help="models:/NAME@ALIAS (followed when it moves), a version or a folder."),
    ] = "models:/lmops-lm@production",
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    engine: Annotated[
        Literal["transformers", "vllm"], typer.Option(help="vllm needs vLLM on a GPU machine.")
    ] = "transformers",
    device: Annotated[Literal["auto", "cpu", "cuda"], typer.Option()] = "auto",
    quantize: Annotated[
        Literal["none", "int8", "bf16"], typer.Option(help="int8 on CPU, bf16 on GPU.")
    ] = "none",
    max_batch_size: Annotated[int, typer.Option(help="Rows decoded together.")] = 16,
    max_tokens_limit: Annotated[int, typer.Option(help="Largest max_tokens accepted.")] = 512,
    request_token_budget: Annotated[
        int, typer.Option(help="Most tokens one request may generate (prompts x n x max_tokens).")
    ] = 4096,
    key_max_concurrent: Annotated[
        int, typer.Option(help="Requests in flight per API key; more get 429.")
    ] = 16,
    key_tokens_per_minute: Annotated[
        int, typer.Option(help="Prompt plus generated tokens per key and minute; more get 429.")
    ] = 120_000,
    max_queued_requests: Annotated[
        int, typer.Option(help="Requests in flight across keys; more get 503.")
    ] = 64,
    safety: Annotated[
        Literal["block", "redact", "off"], typer.Option(help="Output filter action.")
    ] = "redact",
    watch_interval: Annotated[
        float, typer.Option(help="Seconds between alias and key-file checks.")
    ] = 5.0,
    keys_file: Annotated[
        Path | None,
        typer.Option("--keys-file", help="Key file. Default: <LMOPS_HOME>/serving/api_keys.toml."),
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="No API keys (only on 127.0.0.1).")
    ] = False,
    allow_unsigned: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned",
            help="DEVELOPMENT ONLY: serve a folder, or a version whose signatures do not verify.",
        ),
    ] = False,
) -> None:
    """Serve the model behind an OpenAI-compatible API (/v1/completions, /v1/chat/completions).

    Clients send `Authorization: Bearer <key>` (create one with `lmops keys add NAME`).
    The OpenAPI spec is at /openapi.json; /healthz and /metrics (Prometheus) are open.
    Only a version whose signed evidence and promotion record verify is loaded, and an
    alias is followed only to a holder that verifies (see docs/promotion.md).
    """
    import logging

    from lmops.errors import LmopsError
    from lmops.serving.settings import ServeSettings

    quiet_console_logs()
    # The server's own log (swaps, filtered responses, failures) is for its operator.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    served_log = logging.getLogger("lmops.serving")
    served_log.addHandler(handler)
    served_log.setLevel(logging.INFO)
    if no_auth and host not in ("127.0.0.1", "localhost", "::1"):
        raise LmopsError(f"--no-auth serves only on 127.0.0.1, not {host}: add a key instead")
    settings = ServeSettings(
        model=model,
        engine=engine,
        device=device,
        quantize=quantize,
        max_batch_size=max_batch_size,
        max_tokens_limit=max_tokens_limit,
        request_token_budget=request_token_budget,
        key_max_concurrent=key_max_concurrent,
        key_tokens_per_minute=key_tokens_per_minute,
        max_queued_requests=max_queued_requests,
        safety_action=safety,
        watch_interval_s=watch_interval,
        require_api_key=not no_auth,
        api_keys_file=str(keys_file) if keys_file else None,
        allow_unsigned=allow_unsigned,
    )
    keys = None
    if not no_auth:
        from lmops.serving.keys import ApiKeys

        keys = ApiKeys.load(keys_file)
        if keys.empty:
            raise LmopsError(
                "no API keys are configured: create one with `lmops keys add NAME` or set "
                "LMOPS_API_KEYS (name:sha256 pairs); --no-auth serves without keys on 127.0.0.1"
            )
    if model.startswith("models:/"):
        connect_tracking()
    import uvicorn

    from lmops.serving.app import build_app
    from lmops.serving.metering import UsageMeter
    from lmops.serving.model_source import ModelHolder
    from model_registry.verify import load_verified

    # A bad or unverified model is one clear line before the port opens.
    holder = ModelHolder(settings, verifier=load_verified)
    cur = holder.current
    follow = f", following {model} every {watch_interval:g} s" if cur.alias else ""
    err.print(
        f"serving {cur.name} v{cur.version or '-'} at http://{host}:{port}/v1{follow}",
        highlight=False,
    )
    app = build_app(settings, holder=holder, keys=keys, meter=UsageMeter(settings.usage_db))
    uvicorn.run(app, host=host, port=port, log_level="warning")


@keys_app.command("add")
def keys_add(
    name: NameArg,
    file: FileOpt = None,
    max_concurrent: Annotated[
        int | None, typer.Option(help="This key's requests in flight (default: the server's).")
    ] = None,
    tokens_per_minute: Annotated[
        int | None, typer.Option(help="This key's tokens per minute (default: the server's).")
    ] = None,
) -> None:
    """Make a key called NAME and print it once; only its hash is stored.

    A running server picks the key up at its next key-file check, with no restart.
    """
    from lmops.serving.keys import KeyLimits, add_key

    raw = add_key(name, file, KeyLimits(max_concurrent, tokens_per_minute))
    # The key alone on stdout, so `KEY=$(lmops keys add NAME)` captures just the key.
    print(raw)
    err.print(
        f"key '{name}' added. Copy it now: it is not stored and cannot be shown again.",
        highlight=False,
    )


@keys_app.command("list")
def keys_list(file: FileOpt = None, json_out: JsonOpt = False) -> None:
    """Key names, when each was added and where it comes from (never the hashes)."""
    from lmops.serving.keys import ENV_VAR, ApiKeys

    keys = ApiKeys.load(file)
    rows = [
        {
            "name": name,
            "created": keys.created.get(name, ""),
            "source": "file" if name in keys.created else ENV_VAR,
            "max_concurrent": getattr(keys.limits.get(name), "max_concurrent", None),
            "tokens_per_minute": getattr(keys.limits.get(name), "tokens_per_minute", None),
        }
        for name in sorted(keys.hashes)
    ]
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no API keys; add one with `lmops keys add NAME`")
        return
    t = Table("name", "created (UTC)", "source", "max concurrent", "tokens/min")
    for r in rows:
        own = [str(r[f]) if r[f] else "server's" for f in ("max_concurrent", "tokens_per_minute")]
        t.add_row(r["name"], r["created"] or "-", r["source"], *own)
    console.print(t)


@keys_app.command("revoke")
def keys_revoke(name: NameArg, file: FileOpt = None) -> None:
    """Remove key NAME; a running server refuses it from its next key-file check."""
    from lmops.serving.keys import revoke_key

    revoke_key(name, file)
    console.print(f"key '{name}' revoked")


def usage(
    key: Annotated[str | None, typer.Option("--key", help="Only this key's usage.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="A duration back from now (30m, 24h, 7d) or a date."),
    ] = None,
    by: Annotated[
        Literal["key", "model", "day"], typer.Option("--by", help="Group rows by this.")
    ] = "key",
    db: Annotated[
        str | None,
        typer.Option("--db", help="Usage database URL. Default: $LMOPS_USAGE_DB or the home's."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Requests and tokens served, per key, model or day."""
    from lmops.serving.metering import UsageMeter, parse_since

    start = parse_since(since) if since else None
    meter = UsageMeter(db)
    try:
        rows = meter.summary(key=key, since=start, group_by=by)
    finally:
        meter.close()
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no usage recorded" + (f" since {since}" if since else ""))
        return
    cols = ("requests", "prompt_tokens", "completion_tokens", "total_tokens")
    t = Table(by, *(c.replace("_", " ") for c in cols))
    for c in t.columns[1:]:
        c.justify = "right"
    for r in rows:
        t.add_row(str(r[by]), *(f"{r[c]:,}" for c in cols))
    t.add_section()
    t.add_row("all", *(f"{sum(r[c] for r in rows):,}" for c in cols), style="bold")
    console.print(t)
