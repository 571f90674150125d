"""``lmops.home``: the temporary Prefect API the CLI starts before Prefect is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lmops.errors import LmopsError
from lmops.home import PrefectApi, start_prefect_api

_SCRIPT = """
import json, os, sys
from lmops.home import prepare_environment, start_prefect_api

h = prepare_environment()
api = start_prefect_api()
api.wait(meanwhile=[lambda: print("meanwhile ran", file=sys.stderr)])
from prefect import flow
from prefect.client.orchestration import get_client

@flow
def probe():
    return 42

assert probe() == 42
with get_client(sync_client=True) as client:
    runs = client.read_flow_runs()
    json.dump({"pid": api.process.pid, "env_url": os.environ["PREFECT_API_URL"],
               "api_url": api.url, "client_url": str(client.api_url),
               "runs": [r.name for r in runs]}, sys.stdout)
"""


def _clean_env(home) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env["LMOPS_HOME"] = str(home)
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "300"  # a loaded 2-core box
    return env


def test_flows_run_on_the_early_server_which_stops_with_the_process(tmp_path):
    home = tmp_path / ".lmops"
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=tmp_path,
        env=_clean_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # Prefect used this server (no second one of its own), on the home's database.
    assert out["env_url"] == out["api_url"] == out["client_url"].rstrip("/")
    assert len(out["runs"]) == 1
    assert (home / "prefect" / "prefect.db").is_file()
    assert "meanwhile ran" in proc.stderr
    with pytest.raises(ProcessLookupError):  # stopped and reaped at exit
        os.kill(out["pid"], 0)


def test_prefect_decides_alone_when_configured_or_already_imported(tmp_path, monkeypatch):
    import prefect  # noqa: F401  (its settings are read at import: too late to steer)

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "true")
    assert start_prefect_api() is None
    monkeypatch.setitem(sys.modules, "prefect", None)
    monkeypatch.delitem(sys.modules, "prefect")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert start_prefect_api() is None
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "false")
    assert start_prefect_api() is None
    monkeypatch.setenv("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "true")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    (tmp_path / "profiles.toml").write_text('active = "x"\n[profiles.x]\n')
    assert start_prefect_api() is None
    assert "PREFECT_API_URL" not in os.environ


def test_wait_names_a_server_that_exits(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # restored after the test
    monkeypatch.chdir(tmp_path)
    # Not a database URL Prefect can open: the server exits during start-up.
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "nonsense://")
    api = PrefectApi()
    with pytest.raises(LmopsError, match="exited with code"):
        api.wait()
