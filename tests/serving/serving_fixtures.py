"""Live servers for the serving tests (the served model is ``model_dir`` in
tests/conftest.py)."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live(app):
    """Run ``app`` under uvicorn on a free port in this process; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def open_stream(url: str, key: str, max_tokens: int):
    """A streaming completion of ``max_tokens`` (EOS ignored) as ``key``; use with ``with``."""
    import httpx

    body = {"model": "tiny-lm", "prompt": "the", "max_tokens": max_tokens, "stream": True}
    body["ignore_eos"] = True
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.stream("POST", url + "/v1/completions", json=body, headers=headers, timeout=60)
