"""Where lmops keeps its state, and how it finds the services it talks to.

Embedded defaults put everything under ``LMOPS_HOME`` (default ``./.lmops``):
MLflow on SQLite plus an artifact folder, an ephemeral Prefect API with its
database, local Ray's checkpoints. The standard variables ``MLFLOW_TRACKING_URI``,
``RAY_ADDRESS`` and ``PREFECT_API_URL`` switch each to a real server; no code changes.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Home:
    """Resolved locations for one lmops home."""

    root: Path

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def tokenizers(self) -> Path:
        return self.root / "tokenizers"

    @property
    def token_shards(self) -> Path:
        return self.root / "tokens"

    @property
    def ray_results(self) -> Path:
        return self.root / "ray_results"

    @property
    def samples(self) -> Path:
        return self.root / "sample_corpus"

    @property
    def prefect(self) -> Path:
        return self.root / "prefect"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def embedded_tracking_uri(self) -> str:
        """The home's own MLflow store: SQLite at ``mlflow.db``."""
        return f"sqlite:///{self.mlflow_db}"

    @property
    def tracking_uri(self) -> str:
        """``MLFLOW_TRACKING_URI`` if set, else SQLite inside the home."""
        return os.environ.get("MLFLOW_TRACKING_URI") or self.embedded_tracking_uri

    @property
    def embedded_mlflow(self) -> bool:
        """True when MLflow's store is this home's SQLite database.

        Decided by value, not by whether ``MLFLOW_TRACKING_URI`` is set:
        ``mlflow.set_tracking_uri`` exports that variable into this process and its
        children, so after the first ``configure_mlflow`` it is set even when the user
        set nothing. Testing its mere presence once made every experiment lmops created
        take MLflow's default artifact root, ``./mlruns`` of the working directory.
        """
        return self.tracking_uri == self.embedded_tracking_uri


def home() -> Home:
    """The active home: ``LMOPS_HOME`` or ``./.lmops``, as an absolute path."""
    return Home(Path(os.environ.get("LMOPS_HOME", ".lmops")).expanduser().resolve())


def prepare_environment() -> Home:
    """Create the home and point every library at it before any of them is imported.

    Called first by the CLI and the flows. It only sets variables the user has not
    set, so real servers configured through the environment always win.
    """
    h = home()
    for d in (h.root, h.artifacts, h.datasets, h.prefect, h.logs):
        d.mkdir(parents=True, exist_ok=True)
    defaults = {
        # Prefect: without PREFECT_API_URL it runs an ephemeral API on a SQLite
        # database; keep that database inside the lmops home.
        "PREFECT_HOME": str(h.prefect),
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
        # A new home's ephemeral API first migrates its database: Prefect's 20 s default
        # wait was measured too short on 2 cores (a fresh `make run` failed on it).
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Telemetry calls would only time out on closed networks.
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        "TOKENIZERS_PARALLELISM": "true",
        "RAY_TRAIN_V2_ENABLED": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return h


# Prefect's own temporary server runs with these on top of the caller's environment.
_EPHEMERAL_SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}
_TRUE = ("1", "true", "t", "yes", "y", "on")
# ``python -m uvicorn`` as Prefect runs it, with the CLI's garbage-collector threshold
# (see pipelines/cli.py): 1 s less start-up measured on 2 cores (3.9 s instead of 5.0 s).
_UVICORN = (
    "import gc, runpy; gc.set_threshold(10_000); "
    "runpy.run_module('uvicorn', run_name='__main__', alter_sys=True)"
)


class PrefectApi:
    """Prefect's temporary API server, started before Prefect is imported.

    Without ``PREFECT_API_URL``, Prefect starts this same server (``SubprocessASGIServer``:
    uvicorn with the same app, options, environment and database) at a process's first
    API call, but only after importing the server's code into the calling process to
    reach that class (2.3 to 4 s measured on 2 cores), and then blocks until it
    answers. Started here instead, its start-up runs on the second core while the CLI
    imports the flow.
    ``PREFECT_API_URL`` then names it, so Prefect, and any child process, use it as they
    would a real server. It stops when this process exits, as Prefect's does.
    """

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        site = Path(importlib.util.find_spec("prefect").origin).parent.parent
        self.url = f"http://127.0.0.1:{port}/api"
        self.process = subprocess.Popen(
            [sys.executable, "-c", _UVICORN, "--app-dir", str(site), "--factory"]
            + ["prefect.server.api.server:create_app", "--host", "127.0.0.1"]
            + ["--port", str(port), "--log-level", "error", "--lifespan", "on"],
            env={**os.environ, **_EPHEMERAL_SERVER_ENV},
        )
        atexit.register(self.stop)
        os.environ["PREFECT_API_URL"] = self.url

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
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LmopsError(
                    f"Prefect's temporary API server exited with code {self.process.returncode} "
                    "before it answered; retry, or point PREFECT_API_URL at a running server"
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
            f"Prefect's temporary API server did not answer within {timeout:.0f} s; raise "
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or run `lmops services up`"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_prefect_api() -> PrefectApi | None:
    """Start Prefect's temporary API now when Prefect would start one anyway, else None.

    None when ``PREFECT_API_URL`` names a server, ephemeral mode is off, Prefect is
    already imported (its settings are read then, so a URL set now would be ignored), or
    a Prefect settings file that could name a server exists: Prefect then decides alone.
    Call after :func:`prepare_environment`.
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
    return PrefectApi()


def _prefect_settings_files() -> list[Path]:
    """Files besides the environment from which Prefect may read its API URL."""
    prefect_home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    profiles = os.environ.get("PREFECT_PROFILES_PATH") or str(prefect_home / "profiles.toml")
    found = [p for p in (Path(profiles), Path(".env"), Path("prefect.toml")) if p.is_file()]
    pyproject = Path("pyproject.toml")
    if pyproject.is_file() and "[tool.prefect" in pyproject.read_text(encoding="utf-8"):
        found.append(pyproject)
    return found
