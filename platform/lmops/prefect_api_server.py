"""The embedded Prefect API server process that lmops keeps warm between commands.

Run by :mod:`lmops.prefect_api` as ``python -m lmops.prefect_api_server HOME PORT IDLE_S``.
It serves Prefect's own ASGI app (``prefect.server.api.server:create_app``, with the
settings Prefect gives its ephemeral server) through uvicorn, as Prefect's
``SubprocessASGIServer`` does, and adds one thing Prefect lacks: it stops by itself.

Every lmops command that uses it holds a shared ``flock`` on ``api.users`` for its whole
life (the kernel drops it when the command exits or crashes) and touches the file as it
starts. The server stops once nobody has held the lock and nobody touched the file for
``IDLE_S`` seconds, or at once if its home is deleted. Before it stops it takes the lock
exclusively and removes ``api.json``, so a command either sees a server that stays up
while it runs, or no server and starts a new one.

A new home's Prefect database starts as a copy of a template: migrating a new SQLite
database and registering Prefect's block types took 5 to 6 s on 2 cores, copying the
result takes milliseconds. The first new home on a machine migrates as Prefect does,
and its server saves the result, before it serves anything, as the template for
later homes: ``prefect-<version>.db`` in :func:`lmops.home.cache_dir`. A configured
database URL is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import shutil
import sqlite3
import sys
import threading
import time
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path

from lmops.home import cache_dir, replacing

POLL_S = 1.0
_DB_URL_VARS = ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL")


def _idle_watch(server, prefect_dir: Path, idle_s: float) -> None:
    users = prefect_dir / "api.users"
    state = prefect_dir / "api.json"
    idle_since = time.time()
    while not server.should_exit:
        time.sleep(POLL_S)
        try:
            fd = os.open(users, os.O_RDWR)
        except FileNotFoundError:  # the home was deleted: nobody can use this server
            server.should_exit = True
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a command is using the server
            os.close(fd)
            idle_since = time.time()
            continue
        # Nobody holds it now; a command that came and went between two polls touched it.
        idle_since = max(idle_since, os.fstat(fd).st_mtime)
        if time.time() - idle_since < idle_s:
            os.close(fd)  # releases the lock
            continue
        # Stop while holding the lock (until this process exits): a command that starts
        # now waits for it, then finds no api.json and starts a new server.
        with contextlib.suppress(FileNotFoundError):
            state.unlink()
        server.should_exit = True
        return


class DatabaseTemplate:
    """The migrated, block-registered Prefect database a new home starts from."""

    def __init__(self) -> None:
        prefect_home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
        self.db = prefect_home / "prefect.db"  # Prefect's default database URL
        self.memo = Path(
            os.environ.get("PREFECT_MEMO_STORE_PATH") or prefect_home / "memo_store.toml"
        )
        name = f"prefect-{version('prefect')}"
        self.template = cache_dir() / f"{name}.db"
        self.template_memo = cache_dir() / f"{name}.memo_store.toml"
        # Only Prefect's default SQLite file, and only where it does not exist yet.
        self.new = not any(os.environ.get(v) for v in _DB_URL_VARS) and not self.db.exists()

    def seed(self) -> bool:
        """Copy the template into a new home; False where there is none to copy."""
        if not self.new or not self.template.is_file():
            return False
        try:
            self.db.parent.mkdir(parents=True, exist_ok=True)
            _copy(self.template, self.db)
            # The memo tells Prefect the block types are registered already.
            if self.template_memo.is_file() and not self.memo.exists():
                _copy(self.template_memo, self.memo)
        except OSError as exc:  # Prefect then migrates a new database, as without one
            self.db.unlink(missing_ok=True)
            print(f"lmops: could not copy the Prefect database template: {exc}", file=sys.stderr)
            return False
        # Made by this Prefect version, so at its head already: skip alembic's check.
        os.environ.setdefault("PREFECT_SERVER_DATABASE_MIGRATE_ON_START", "false")
        self.new = False
        return True

    def save(self) -> None:
        """Save the database this server just created as the template, if still new."""
        if not self.new or not self.db.is_file():
            return
        try:
            self.template.parent.mkdir(parents=True, exist_ok=True)
            if self.memo.is_file():
                _copy(self.memo, self.template_memo)
            # The backup API copies a consistent database while Prefect holds it open.
            # The template goes last: without it, no one reads the memo.
            with (
                replacing(self.template) as tmp,
                contextlib.closing(sqlite3.connect(self.db)) as src,
                contextlib.closing(sqlite3.connect(tmp)) as dst,
            ):
                src.backup(dst)
        except (OSError, sqlite3.Error) as exc:  # a cache we cannot write costs only time
            print(f"lmops: could not save the Prefect database template: {exc}", file=sys.stderr)

    def app_factory(self):
        """Prefect's app, whose startup saves the template once migrations are done.

        The lifespan startup runs before uvicorn binds its socket, so the copy holds
        Prefect's own initial rows and nothing a client wrote.
        """
        from prefect.server.api.server import create_app

        app = create_app()
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(a):
            async with inner(a) as state:
                self.save()
                yield state

        app.router.lifespan_context = lifespan
        return app


def _copy(src: Path, dest: Path) -> None:
    with replacing(dest) as tmp:
        shutil.copyfile(src, tmp)


def main(argv: list[str]) -> None:
    home, port, idle_s = Path(argv[0]), int(argv[1]), float(argv[2])
    # Prefect's ephemeral server settings (see SubprocessASGIServer._run_uvicorn_command);
    # set before Prefect is imported, which reads them then.
    os.environ.update(
        {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    )
    gc.set_threshold(10_000)  # as in the CLI: 1 s less start-up on 2 cores
    template = DatabaseTemplate()
    template.seed()
    import uvicorn

    config = uvicorn.Config(
        template.app_factory,
        factory=True,
        host="127.0.0.1",
        port=port,
        log_level="error",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    watch = threading.Thread(
        target=_idle_watch, args=(server, home / "prefect", idle_s), daemon=True
    )
    watch.start()
    try:
        server.run()
    finally:  # stopped by a signal or a failure: do not leave api.json naming this pid
        state = home / "prefect" / "api.json"
        with contextlib.suppress(FileNotFoundError, ValueError):
            if json.loads(state.read_text(encoding="utf-8"))["pid"] == os.getpid():
                state.unlink()


if __name__ == "__main__":
    main(sys.argv[1:])
