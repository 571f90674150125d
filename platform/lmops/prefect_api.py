"""The embedded Prefect API: one server per lmops home, shared by commands and kept warm.

Without ``PREFECT_API_URL``, Prefect starts a temporary API server (uvicorn with its
own app on the home's SQLite database) at each process's first API call and stops it
at exit: 3 to 4 s of every command on 2 cores, 5 to 10 s on a new home that migrates
its database. lmops starts that same server once per home instead, detached, and each
command reuses it (:mod:`lmops.prefect_api_server` is the server process). It stops
by itself ``LMOPS_PREFECT_IDLE_S`` seconds (default 600) after the last command that
used it; ``0`` stops it within a second of that command's exit. ``lmops services status`` shows it
and ``lmops services down`` stops it.

State lives in the home's ``prefect/`` folder: ``api.json`` names the running server,
``api.lock`` serialises starts, and each command holds a shared lock on ``api.users``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

from lmops.home import Home, home, replacing

DEFAULT_IDLE_S = 600
_TRUE = ("1", "true", "t", "yes", "y", "on")
_USERS_FD: int | None = None  # this process's shared lock; the kernel drops it at exit


class PrefectApi:
    """The home's embedded Prefect API, started now or found running."""

    def __init__(self, url: str, pid: int, process: subprocess.Popen | None = None) -> None:
        self.url, self.pid, self.process = url, pid, process
        self.started = process is not None  # by this command, rather than found running
        os.environ["PREFECT_API_URL"] = url

    def _alive(self) -> bool:
        if self.process is not None:  # our child: its exit status is the truth
            return self.process.poll() is None
        return _pid_alive(self.pid)

    def wait(self, meanwhile: Iterable[Callable[[], object]] = ()) -> None:
        """Block until the server answers; a clear error if it exits or never does.

        Each of ``meanwhile`` is called in turn while the server does not answer yet,
        and the rest are skipped once it does: work the caller is sure to do later,
        done in time this process would otherwise spend idle.
        """
        from lmops.errors import LmopsError

        pending = iter(meanwhile)
        timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 20))
        deadline = time.monotonic() + timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        log = home().logs / "prefect-api.log"
        while time.monotonic() < deadline:
            if not self._alive():
                raise LmopsError(
                    f"the embedded Prefect API server (pid {self.pid}) exited before it "
                    f"answered; see {log}, retry, or point PREFECT_API_URL at a running server"
                )
            try:
                with opener.open(f"{self.url}/health", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            job = next(pending, None)
            if job is None:
                time.sleep(0.05)
            else:
                job()
        raise LmopsError(
            f"the embedded Prefect API server did not answer within {timeout:.0f} s (see "
            f"{log}); raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or run "
            "`lmops services up`"
        )

    @contextlib.contextmanager
    def flows(self, meanwhile: Iterable[Callable[[], object]] = ()):
        """Wait for the server, then run the flows called inside on it without heartbeats.

        A flow run's heartbeat thread sleeps in 1 s steps and the flow's end waits for
        it: up to 1 s of every command. Heartbeats only let a server's proactive
        automations mark silent runs crashed, and an ephemeral server, which this one
        is, runs none, so here they cost time and buy nothing.
        """
        self.wait(meanwhile)
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield


def idle_seconds() -> float:
    """``LMOPS_PREFECT_IDLE_S``: how long the server outlives the last command."""
    from lmops.errors import LmopsError

    raw = os.environ.get("LMOPS_PREFECT_IDLE_S", str(DEFAULT_IDLE_S))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < math.inf:
        raise LmopsError(f"LMOPS_PREFECT_IDLE_S must be a number of seconds >= 0, not {raw!r}")
    return value


def start_prefect_api() -> PrefectApi | None:
    """Use the home's embedded Prefect API, starting it if none runs; else None.

    None when ``PREFECT_API_URL`` names a server, ephemeral mode is off, Prefect is
    already imported (its settings are read then, so a URL set now would be ignored), or
    a Prefect settings file that could name a server exists: Prefect then decides alone.
    Call after :func:`lmops.home.prepare_environment`; this process then holds the
    server until it exits.
    """
    if os.environ.get("PREFECT_API_URL") or "prefect" in sys.modules:
        return None
    enabled = os.environ.get(
        "PREFECT_SERVER_EPHEMERAL_ENABLED", os.environ.get("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE")
    )
    if (enabled or "").lower() not in _TRUE:
        return None
    if _prefect_settings_files():
        return None
    return _acquire(home(), idle_seconds())


def _acquire(h: Home, idle_s: float) -> PrefectApi:
    global _USERS_FD
    d = h.prefect
    d.mkdir(parents=True, exist_ok=True)
    if _USERS_FD is not None:  # a process uses one home's API at a time
        os.close(_USERS_FD)
        _USERS_FD = None
    users = os.open(d / "api.users", os.O_RDWR | os.O_CREAT, 0o600)
    with _locked(d / "api.lock"):
        # Blocks while a server is stopping (it holds the lock exclusively until it exits).
        fcntl.flock(users, fcntl.LOCK_SH)
        os.utime(users)  # a use the server sees even if this command ends between its polls
        _USERS_FD = users
        state = read_state(h)
        if state and _pid_alive(state["pid"]):
            return PrefectApi(state["url"], state["pid"])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        h.logs.mkdir(parents=True, exist_ok=True)
        with open(h.logs / "prefect-api.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lmops.prefect_api_server", str(h.root), str(port)]
                + [f"{idle_s:g}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C in the terminal stops the command, not it
            )
        url = f"http://127.0.0.1:{port}/api"
        state = {"pid": proc.pid, "url": url, "idle_s": idle_s, "started_at": time.time()}
        with replacing(d / "api.json") as tmp:
            tmp.write_text(json.dumps(state), encoding="utf-8")
        return PrefectApi(url, proc.pid, proc)


@contextlib.contextmanager
def _locked(path: Path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` runs an lmops Prefect API server (a stale ``api.json`` may name a
    pid reused since by another process; ``/proc`` tells, where there is one)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path(f"/proc/{pid}")
    if not Path("/proc").is_dir():  # no /proc (macOS): trust the pid
        return True
    try:
        if (proc / "stat").read_text().rpartition(")")[2].split()[0] == "Z":
            return False  # exited, not yet reaped
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    # Empty for a moment while a new server execs (its command line is not set yet).
    return not cmdline or b"lmops.prefect_api_server" in cmdline


def read_state(h: Home) -> dict | None:
    """The running server's ``api.json`` (pid, url, idle_s, started_at), or None."""
    try:
        return json.loads((h.prefect / "api.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def status(h: Home) -> str:
    """One line on the embedded Prefect API of home ``h``."""
    state = read_state(h)
    if not state or not _pid_alive(state["pid"]):
        return "prefect (embedded API): not running"
    return (
        f"prefect (embedded API): up at {state['url']} (pid {state['pid']}; stops "
        f"{state['idle_s']:g} s after the last command)"
    )


def stop(h: Home, timeout: float = 10.0) -> bool:
    """Stop the embedded server of home ``h``; False if none was running."""
    state = read_state(h)
    if not state or not _pid_alive(state["pid"]):
        return False
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(state["pid"]):
        os.kill(state["pid"], signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        (h.prefect / "api.json").unlink()
    return True


def _prefect_settings_files() -> list[Path]:
    """Files besides the environment from which Prefect may read its API URL."""
    prefect_home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    profiles = os.environ.get("PREFECT_PROFILES_PATH") or str(prefect_home / "profiles.toml")
    found = [p for p in (Path(profiles), Path(".env"), Path("prefect.toml")) if p.is_file()]
    pyproject = Path("pyproject.toml")
    if pyproject.is_file() and "[tool.prefect" in pyproject.read_text(encoding="utf-8"):
        found.append(pyproject)
    return found
