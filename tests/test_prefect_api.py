"""``lmops.prefect_api``: one embedded Prefect API per home, shared by commands, kept warm
for ``LMOPS_PREFECT_IDLE_S`` and then stopped by itself."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from conftest import run_python
from lmops import prefect_api
from lmops.errors import LmopsError
from lmops.home import Home
from lmops.prefect_api import start_prefect_api

# A command as the CLI runs one: take the home's API, wait for it, run a flow on it.
_COMMAND = """
import json, os, sys, time
from lmops.home import prepare_environment
from lmops.prefect_api import start_prefect_api

h = prepare_environment()
api = start_prefect_api()
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings

@flow
def probe():
    return get_current_settings().flows.heartbeat_frequency

with api.flows(meanwhile=[lambda: print("meanwhile ran", file=sys.stderr)]):
    heartbeat = probe()
with get_client(sync_client=True) as client:
    runs = client.read_flow_runs()
print(json.dumps({"pid": api.pid, "started": api.started, "url": api.url,
                  "client_url": str(client.api_url), "runs": len(runs),
                  "heartbeat": heartbeat}))
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


def _env(idle_s: float) -> dict:
    # A loaded 2-core box may need longer than Prefect's 20 s for a server to answer.
    return {
        "LMOPS_PREFECT_IDLE_S": str(idle_s),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
    }


def _command(home, idle_s: float, hold_s: float = 0) -> dict:
    proc = run_python(_COMMAND, home, str(hold_s), env=_env(idle_s))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["stderr"] = proc.stderr
    return out


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # The server is not our child: nothing to reap. Its state file goes first.
        time.sleep(0.2)
    return False


def test_commands_share_one_server_that_stops_after_the_idle_time(tmp_path):
    home = tmp_path / ".lmops"
    first = _command(home, idle_s=8)
    second = _command(home, idle_s=8)
    # One server for both, on the home's database; Prefect used it (no second server).
    assert first["started"] and not second["started"]
    assert first["pid"] == second["pid"]
    assert second["url"] == second["client_url"].rstrip("/")
    assert second["runs"] == 2
    assert (home / "prefect" / "prefect.db").is_file()
    assert "meanwhile ran" in first["stderr"]  # a new server: the caller had time to use
    assert first["heartbeat"] is None  # no flow-run heartbeat on the embedded API
    assert "up at " + first["url"] in prefect_api.status(Home(home))
    # Idle for 8 s: it stops by itself and removes its state.
    assert _gone(first["pid"], within_s=60)
    assert not (home / "prefect" / "api.json").exists()
    assert prefect_api.status(Home(home)).endswith("not running")
    third = _command(home, idle_s=0)
    assert third["started"] and third["pid"] != first["pid"] and third["runs"] == 3
    assert _gone(third["pid"], within_s=30)  # idle 0: it stops once its command exits


def test_a_running_command_keeps_the_server_past_its_idle_time(tmp_path):
    home = tmp_path / ".lmops"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(_env(idle_s=0), LMOPS_HOME=str(home))
    holder = subprocess.Popen(
        [sys.executable, "-c", _COMMAND, "8"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        state = home / "prefect" / "api.json"
        deadline = time.monotonic() + 300
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        pid = json.loads(state.read_text())["pid"]
        # Another command comes and goes while the first still runs: same server.
        other = _command(home, idle_s=0)
        assert other["pid"] == pid and not other["started"]
        assert not _gone(pid, within_s=2)  # idle time 0, but the first command holds it
        out, err = holder.communicate(timeout=300)
        assert holder.returncode == 0, err[-3000:]
        assert _gone(pid, within_s=30)
    finally:
        holder.kill()


def test_a_deleted_home_stops_its_server_and_stop_stops_one(tmp_path):
    home = tmp_path / ".lmops"
    pid = _command(home, idle_s=600)["pid"]
    shutil.rmtree(home)
    assert _gone(pid, within_s=30)
    pid = _command(home, idle_s=600)["pid"]
    assert prefect_api.stop(Home(home)) is True
    assert _gone(pid, within_s=10)
    assert prefect_api.stop(Home(home)) is False


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


def test_wait_names_a_server_that_exits_and_a_bad_idle_time(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # restored after the test
    monkeypatch.setenv("LMOPS_HOME", str(tmp_path / ".lmops"))
    # Not a database URL Prefect can open: the server exits during start-up.
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "nonsense://")
    monkeypatch.setattr(prefect_api, "_USERS_FD", None)  # restored after the test
    api = prefect_api._acquire(Home(tmp_path / ".lmops"), idle_s=0)
    with pytest.raises(LmopsError, match="exited before it answered; see .*prefect-api.log"):
        api.wait()
    assert (tmp_path / ".lmops" / "logs" / "prefect-api.log").stat().st_size > 0
    os.close(prefect_api._USERS_FD)
    monkeypatch.setenv("LMOPS_PREFECT_IDLE_S", "ten")
    with pytest.raises(LmopsError, match="LMOPS_PREFECT_IDLE_S must be"):
        prefect_api.idle_seconds()


def test_a_stale_state_file_names_no_live_server(tmp_path):
    # A pid since reused by another process, and one that exited but is not reaped yet.
    assert prefect_api._pid_alive(os.getpid()) is False
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # a zombie until reaped: os.kill still succeeds
        stat = Path(f"/proc/{child.pid}/stat").read_text()
        if stat.rpartition(")")[2].split()[0] == "Z":
            break
        time.sleep(0.05)
    assert prefect_api._pid_alive(child.pid) is False
    child.wait()
    (tmp_path / "prefect").mkdir()
    (tmp_path / "prefect" / "api.json").write_text(json.dumps({"pid": os.getpid(), "url": "x"}))
    assert prefect_api.status(Home(tmp_path)).endswith("not running")
    assert prefect_api.stop(Home(tmp_path)) is False


def test_a_new_home_starts_from_the_database_the_first_new_home_made(tmp_path):
    import sqlite3

    cache = tmp_path / "cache"
    env = {**_env(0), "LMOPS_CACHE": str(cache)}

    def command(home, **extra):
        home.parent.mkdir()
        proc = run_python(_COMMAND, home, env={**env, **extra})
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    assert command(tmp_path / "a" / ".lmops")["runs"] == 1
    templates = sorted(p.name for p in cache.iterdir())
    assert templates == [
        f"prefect-{version('prefect')}.db",
        f"prefect-{version('prefect')}.memo_store.toml",
    ]
    template = cache / templates[0]
    # Mark the template: a home whose database holds the mark was copied from it.
    with contextlib.closing(sqlite3.connect(template)) as db, db:
        db.execute("CREATE TABLE lmops_test_mark (x)")
    saved = template.stat().st_mtime_ns

    b = tmp_path / "b" / ".lmops"
    assert command(b)["runs"] == 1  # its own run; the first home's did not come along

    def marked(path) -> bool:
        with contextlib.closing(sqlite3.connect(path)) as db:
            sql = "SELECT 1 FROM sqlite_master WHERE name = 'lmops_test_mark'"
            return db.execute(sql).fetchone() is not None

    assert marked(b / "prefect" / "prefect.db")
    assert template.stat().st_mtime_ns == saved  # a seeded home does not save it again

    # A configured database is Prefect's own business: not seeded, nothing saved.
    other = tmp_path / "other.db"
    c = tmp_path / "c" / ".lmops"
    url = f"sqlite+aiosqlite:///{other}"
    assert command(c, PREFECT_API_DATABASE_CONNECTION_URL=url)["runs"] == 1
    assert other.is_file() and not marked(other)
    assert not (c / "prefect" / "prefect.db").exists()
    assert template.stat().st_mtime_ns == saved
