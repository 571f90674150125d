"""`lmops audit --watch` against the real MLflow server: webhooks, not polling, undo a move.

bob (EDIT on the model) sets @staging to a version no gate passed, as the UI's alias
pencil does. The watcher polls only every 10 minutes here, so an undo within seconds can
only come from MLflow's signed ``model_version_alias.created`` delivery. MLflow's
basic-auth lets only an admin manage webhooks, so the watcher runs as the admin of
``services.env`` (run as anyone else it says so and polls).

Run with `make test-services` (CI: `.ci/run` starts the services first).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time

import pytest
import requests
from test_promotion_services import (  # noqa: F401 (fixtures)
    actors,
    finish,
    model,
    results,
    source_run,
)

from conftest import LMOPS, REPO
from model_registry import keys as signing_keys

pytestmark = pytest.mark.services


def _watcher(home) -> tuple[subprocess.Popen, list[str], threading.Event]:
    """`lmops audit --watch` as the admin; its stdout lines, and an event set on listening."""
    env = {
        **os.environ,
        "LMOPS_HOME": str(home),
        "LMOPS_SIGNING_KEY": str(signing_keys.key_file_for(signing_keys.EVIDENCE)),
        "LMOPS_TRUST_FILE": str(signing_keys.trust_file()),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
    }
    proc = subprocess.Popen(
        [LMOPS, "audit", "--watch", "--revert", "--interval", "600", "--webhook-port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    listening = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip())
            if "listening for MLflow webhooks" in line or "webhooks off" in line:
                listening.set()

    threading.Thread(target=read, daemon=True).start()
    return proc, lines, listening


def test_an_out_of_band_alias_move_is_reverted_on_the_webhook(actors, model, tmp_path):  # noqa: F811
    bob, promoter = actors["bob"], actors["promoter"]
    v1, v2 = model.add_version(), model.add_version()
    out = results(promoter.steps(model.name, [["promote", v1, "staging"]]))
    assert out[0]["moved"], out

    proc, lines, listening = _watcher(tmp_path / "watcher-home")
    try:
        assert listening.wait(180), lines
        joined = "\n".join(lines)
        assert "listening for MLflow webhooks on http://" in joined, joined
        url = re.search(r"listening for MLflow webhooks on (\S+)", joined).group(1)
        # A delivery that MLflow did not sign is refused before it is read.
        forged = requests.post(url, data=b'{"data": {"name": "x"}}', timeout=10)
        assert forged.status_code == 401
        time.sleep(6)  # each server worker caches the webhook list for 5 s

        body = {"name": model.name, "alias": "staging", "version": v2}
        moved = bob.rest("POST", "/api/2.0/mlflow/registered-models/alias", json=body)
        assert moved.status_code == 200, moved.text
        t0 = time.monotonic()
        while model.holder("staging") != v1 and time.monotonic() - t0 < 60:
            time.sleep(0.2)
        took = time.monotonic() - t0
        assert model.holder("staging") == v1, "\n".join(lines)
        assert took < 30, f"reverted after {took:.1f} s: that is the poll, not the webhook"
        print(f"\nout-of-band move reverted {took:.2f} s after it, on the webhook")
        deadline = time.monotonic() + 10
        while not any("reverted to v" + v1 in ln for ln in lines) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any(f"FAIL {model.name} @staging v{v2}" in ln for ln in lines), lines
    finally:
        proc.terminate()
        proc.wait(60)

    # The undo is on record, signed, and the alias verifies again.
    rc, text, err = finish(promoter.lmops("verify", f"{model.name}@staging"))
    assert rc == 0, text + err
