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
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path

POLL_S = 1.0


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


def main(argv: list[str]) -> None:
    home, port, idle_s = Path(argv[0]), int(argv[1]), float(argv[2])
    # Prefect's ephemeral server settings (see SubprocessASGIServer._run_uvicorn_command);
    # set before Prefect is imported, which reads them then.
    os.environ.update(
        {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    )
    gc.set_threshold(10_000)  # as in the CLI: 1 s less start-up on 2 cores
    import uvicorn

    config = uvicorn.Config(
        "prefect.server.api.server:create_app",
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
